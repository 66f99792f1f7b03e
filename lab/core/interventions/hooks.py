"""One batched forward pass with edits: the engine under ablation, the sweep and patching.

A *plan* is the list of ``Edit`` s for one batch element; ``forward(lm, prep, plans)`` runs
the prepared input once per plan, all in one batch, with one hook per touched module that
applies each element's edits to that element only (``torch.where`` / indexed writes, so an
element without edits keeps its exact values). The readout is where the question is
asked: the next-token (or masked-token) log-probabilities at one position, or, for a bare
encoder, its mean-pooled and [CLS] embeddings.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

from lab.core.errors import InputError
from lab.core.interventions import sites
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors

KINDS = ("zero", "mean")


@dataclass(frozen=True)
class Edit:
    """One change to one batch element: ablate a head (``what="head"``) or a whole attention
    or MLP block (``"attn"``/``"mlp"``), or patch a site at one position from a cache
    (``"patch"``, ``site`` resid/attn/mlp)."""
    what: str
    stack: str
    layer: int
    head: int = -1
    site: str = ""
    position: int = -1


@dataclass
class Prepared:
    """A tokenized input and where its readout is taken."""
    readout: str                           # "logits" or "embedding"
    inputs: dict                           # batch-1 tensors for the model call
    position: int                          # the position whose prediction is read
    ids: list[int]
    tokens: list[str]
    decoder_tokens: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.ids)


def _has_lm_head(lm: LoadedModel) -> bool:
    get = getattr(lm.model, "get_output_embeddings", None)
    return get is not None and get() is not None


def prepare(lm: LoadedModel, text: str, *, decoder_text: Optional[str] = None,
            decoder_ids: Optional[list[int]] = None) -> Prepared:
    """Tokenize ``text`` and decide the readout for this kind of model.

    Decoder-only: the next token after the text. Encoder-only with a masked-LM head: the
    first mask token (the embedding change when there is none). Bare encoder: its mean and
    [CLS] embeddings. Encoder-decoder: the decoder reads ``decoder_text`` (default: the
    model's own greedy output) up to its last token and the readout predicts that token.
    """
    import torch

    from lab.core.trace import encode

    if not text:
        raise InputError("The prompt is empty: type some text first.")
    enc, warnings = encode(lm, text)
    ids = list(enc["ids"])
    if not ids:
        raise InputError("The prompt gives no tokens under this tokenizer.")
    notes = list(warnings)
    dev = lm.device
    x = torch.tensor([ids], device=dev)
    inputs = {"input_ids": x, "attention_mask": torch.ones_like(x)}
    tok = lm.tokenizer
    dec_tokens: list[str] = []
    if lm.kind == KIND_DECODER:
        return Prepared("logits", inputs, len(ids) - 1, ids, list(enc["tokens"]), notes=notes)
    if lm.kind == KIND_ENCODER:
        mask_id = getattr(tok, "mask_token_id", None)
        if _has_lm_head(lm) and mask_id is not None and mask_id in ids:
            if ids.count(mask_id) > 1:
                notes.append("The text has several mask tokens; the first one is read.")
            return Prepared("logits", inputs, ids.index(mask_id), ids, list(enc["tokens"]), notes=notes)
        if _has_lm_head(lm):
            notes.append(f"No {tok.mask_token} in the text, so the change is measured on the sentence "
                         "embedding (mean over tokens, and the first token) instead of a prediction.")
        return Prepared("embedding", inputs, 0, ids, list(enc["tokens"]), notes=notes)
    if lm.kind != KIND_SEQ2SEQ:
        raise InputError(f"Interventions do not know the model kind {lm.kind!r}.")
    start = lm.model.config.decoder_start_token_id
    start = int(start if start is not None else (tok.pad_token_id or 0))
    if decoder_ids is None:
        if decoder_text:
            tgt = list(tok(text_target=decoder_text, add_special_tokens=False)["input_ids"])
        else:
            with torch.inference_mode(), device_errors(dev):
                gen = lm.model.generate(**inputs, max_new_tokens=24, do_sample=False)[0].tolist()
            tgt = [int(t) for t in gen if t != start]
            if tgt and tgt[-1] == tok.eos_token_id and len(tgt) > 1:
                tgt = tgt[:-1]
            notes.append("The decoder reads the model's own greedy output; the readout predicts its last token.")
        decoder_ids = [start] + tgt[:-1] if tgt else [start]
    dec = torch.tensor([decoder_ids], device=dev)
    inputs["decoder_input_ids"] = dec
    dec_tokens = tok.convert_ids_to_tokens(decoder_ids)
    return Prepared("logits", inputs, len(decoder_ids) - 1, ids, list(enc["tokens"]), dec_tokens, notes)


def _block_input(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def _with_block_input(args, kwargs, value):
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": value}


class _ModuleEdits:
    """Every edit that touches one module, for a batch of ``n`` elements."""

    def __init__(self, n: int):
        self.n = n
        self.heads: list[tuple[int, slice]] = []      # (element, input columns)
        self.blocks: list[int] = []                   # elements whose whole output is ablated
        self.patches: list[tuple[int, int, object]] = []   # (element, position, value [D])

    def _replace(self, x, rows, kind: str):
        import torch

        mask = torch.zeros(self.n, 1, x.shape[-1], dtype=torch.bool, device=x.device)
        for b, cols in rows:
            mask[b, :, cols] = True
        fill = x.mean(dim=1, keepdim=True) if kind == "mean" else torch.zeros((), dtype=x.dtype, device=x.device)
        return torch.where(mask, fill, x)

    def apply_heads(self, x, kind):
        return self._replace(x, self.heads, kind) if self.heads else x

    def apply_output(self, x, kind):
        if self.blocks:
            x = self._replace(x, [(b, slice(None)) for b in self.blocks], kind)
        if self.patches:
            import torch

            x = x.clone()
            b = torch.tensor([p[0] for p in self.patches], device=x.device)
            pos = torch.tensor([p[1] for p in self.patches], device=x.device)
            x[b, pos] = torch.stack([p[2] for p in self.patches]).to(x.dtype)
        return x


def _tensor_of(out):
    return out[0] if isinstance(out, tuple) else out


def _replace_output(out, value):
    return (value, *out[1:]) if isinstance(out, tuple) else value


@contextlib.contextmanager
def installed(lm: LoadedModel, plans: Sequence[Sequence[Edit]], kind: str = "zero",
              cache: Optional[dict] = None) -> Iterator[None]:
    """Install the hooks that carry out ``plans`` (one per batch element) for one forward."""
    if kind not in KINDS:
        raise InputError(f"Unknown ablation kind {kind!r}; choose zero or mean.")
    all_ = sites.stacks(lm)
    n = len(plans)
    pre_heads: dict[int, tuple[object, _ModuleEdits]] = {}
    post: dict[int, tuple[object, _ModuleEdits]] = {}
    pre_resid: dict[int, tuple[object, _ModuleEdits]] = {}

    def slot(table, module):
        if id(module) not in table:
            table[id(module)] = (module, _ModuleEdits(n))
        return table[id(module)][1]

    for b, plan in enumerate(plans):
        for e in plan:
            st = all_[e.stack]
            if e.what == "head":
                slot(pre_heads, st.attn_out[e.layer]).heads.append(
                    (b, slice(e.head * st.head_dim, (e.head + 1) * st.head_dim)))
            elif e.what in ("attn", "mlp"):
                slot(post, st.module(e.what, e.layer)).blocks.append(b)
            elif e.what == "patch":
                value = cache[(e.stack, e.site, e.layer)][e.position]
                table = pre_resid if e.site == "resid" else post
                slot(table, st.module(e.site, e.layer)).patches.append((b, e.position, value))
            else:
                raise ValueError(e.what)
    handles = []
    try:
        for module, ed in pre_heads.values():
            handles.append(module.register_forward_pre_hook(
                lambda m, args, ed=ed: (ed.apply_heads(args[0], kind), *args[1:])))
        for module, ed in post.values():
            handles.append(module.register_forward_hook(
                lambda m, args, out, ed=ed: _replace_output(out, ed.apply_output(_tensor_of(out), kind))))
        for module, ed in pre_resid.values():
            handles.append(module.register_forward_pre_hook(
                lambda m, args, kwargs, ed=ed: _with_block_input(
                    args, kwargs, ed.apply_output(_block_input(args, kwargs), kind)), with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def forward(lm: LoadedModel, prep: Prepared, plans: Sequence[Sequence[Edit]], *, kind: str = "zero",
            cache: Optional[dict] = None, full: bool = False):
    """Run ``prep`` once per plan in one batch; return the readout per element.

    ``[B, vocab]`` log-probabilities at ``prep.position`` (``full``: the raw logits
    ``[B, T, vocab]``), or ``[B, 2, hidden]`` (mean, first-token embedding) for a bare encoder.
    """
    import torch

    n = len(plans)
    batch = {k: v.expand(n, *v.shape[1:]) for k, v in prep.inputs.items()}
    extra = {}
    last_only = not full and prep.readout == "logits" and _keeps_logits(lm) \
        and prep.position == batch["input_ids"].shape[1] - 1
    if last_only:       # the LM head on the read position only: a large part of a small model's work
        extra["logits_to_keep"] = 1
    with torch.inference_mode(), device_errors(lm.device), installed(lm, plans, kind, cache):
        out = lm.model(**batch, return_dict=True, use_cache=False,
                       output_hidden_states=prep.readout == "embedding", **extra)
    if prep.readout == "embedding":
        h = out.hidden_states[-1]
        return torch.stack([h.float().mean(dim=1), h[:, 0].float()], dim=1)
    if full:
        return out.logits
    return out.logits[:, -1 if last_only else prep.position].float().log_softmax(dim=-1)


def _keeps_logits(lm: LoadedModel) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs)."""
    if lm.kind != KIND_DECODER:
        return False
    import inspect

    cached = lm.model.__dict__.get("_tvlab_logits_to_keep")
    if cached is None:
        cached = "logits_to_keep" in inspect.signature(lm.model.forward).parameters
        lm.model.__dict__["_tvlab_logits_to_keep"] = cached
    return cached


def record(lm: LoadedModel, prep: Prepared, stack: str, site: str) -> dict:
    """The activations at ``site`` of every layer of ``stack`` for ``prep`` (batch 1), as a
    cache for patching: ``{(stack, site, layer): [T, hidden]}``."""
    import torch

    st = sites.stack(lm, stack)
    cache: dict = {}
    handles = []

    def keep(layer, value):
        cache[(stack, site, layer)] = value[0].detach().clone()

    try:
        for layer in range(st.layers):
            mod = st.module(site, layer)
            if site == "resid":
                handles.append(mod.register_forward_pre_hook(
                    lambda m, args, kwargs, layer=layer: keep(layer, _block_input(args, kwargs)), with_kwargs=True))
            else:
                handles.append(mod.register_forward_hook(
                    lambda m, args, out, layer=layer: keep(layer, _tensor_of(out))))
        with torch.inference_mode(), device_errors(lm.device):
            lm.model(**prep.inputs, return_dict=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return cache
