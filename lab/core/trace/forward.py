"""Running the model once with eager attention and capturing a Trace.

``capture(lm, text, target=None)`` returns token ids and pieces with their character
offsets, attentions per stack (``self`` for decoder-only and encoder-only; ``encoder``,
``decoder``, ``cross`` for encoder-decoder; each ``attn[layer, head, query, key]``), hidden
states per layer (``hidden[stack][layer, position, dim]``, index 0 is the embedding
output) and logits. Thumbnails and per-head entropies are reduced where the tensors are
and arrive on the host with the trace. ``capture(..., resident=True)`` keeps the tensors
on the device even on the CPU, so both storage paths are tested on any machine.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import numpy as np

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_DECODER, KIND_SEQ2SEQ, LoadedModel, device_errors
from lab.core.trace.aggregates import THUMB_SIZE
from lab.core.trace.arrays import DeviceArray, _hidden, _store_device, _store_host
from lab.core.trace.record import Trace


def context_limit(lm: LoadedModel) -> Optional[int]:
    return lm.card.context


def encode(lm: LoadedModel, text: str, *, limit: Optional[int] = None) -> tuple[dict, list[str]]:
    """Tokenize with offsets; truncate to ``limit`` tokens with a visible warning."""
    tok = lm.tokenizer
    warnings: list[str] = []
    kwargs = dict(add_special_tokens=True, return_attention_mask=False)
    if getattr(tok, "is_fast", False):
        kwargs["return_offsets_mapping"] = True
    enc = tok(text, **kwargs)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc.get("offset_mapping", [(0, 0)] * len(ids))]
    limit = limit if limit is not None else context_limit(lm)
    if limit and len(ids) > limit:
        warnings.append(
            f"The text is {len(ids)} tokens but {lm.card.name} reads at most {limit}; "
            f"only the first {limit} tokens were used."
        )
        special_tail = ids[-1] in tok.all_special_ids if len(ids) else False
        if special_tail:
            ids = ids[: limit - 1] + ids[-1:]
            offsets = offsets[: limit - 1] + offsets[-1:]
        else:
            ids, offsets = ids[:limit], offsets[:limit]
    specials = set(tok.all_special_ids)
    return {
        "ids": ids,
        "offsets": [(int(a), int(b)) for a, b in offsets],
        "special": [i in specials for i in ids],
        "tokens": tok.convert_ids_to_tokens(ids),
    }, warnings


def _has_attentions(stacks) -> bool:
    return all(atts is not None and len(atts) > 0 and all(a is not None for a in atts) for atts in stacks)


def _model_configs(model) -> list:
    """Every distinct config object the model's modules read (encoder/decoder stacks may hold
    their own copies), found once per model."""
    cached = model.__dict__.get("_tvlab_configs")
    if cached is None:
        seen = {id(model.config): model.config}
        for m in model.modules():
            c = m.__dict__.get("config")
            if c is not None and hasattr(c, "_attn_implementation"):
                seen[id(c)] = c
        cached = list(seen.values())
        model.__dict__["_tvlab_configs"] = cached
    return cached


@contextlib.contextmanager
def eager_attention(lm: LoadedModel) -> Iterator[None]:
    """Eager attention for one forward pass, switched on every config the modules read.

    Cheaper than ``set_attn_implementation`` twice per capture (milliseconds of Python,
    which matter next to a GPU forward), and it reaches the encoder and decoder configs
    that some transformers versions do not update.
    """
    cfgs = _model_configs(lm.model)
    before = [c._attn_implementation for c in cfgs]
    try:
        for c in cfgs:
            if c._attn_implementation != "eager":
                c._attn_implementation = "eager"
        yield
    finally:
        for c, b in zip(cfgs, before):   # parents first, so each sub-config ends with its own value
            if c._attn_implementation != b:
                c._attn_implementation = b


def _eager_forward(lm: LoadedModel, forward, stacks_of):
    """Run ``forward`` with eager attention; if no weights come back, switch the whole model
    with ``set_attn_implementation`` and try once more."""
    with eager_attention(lm):
        out = forward()
    if _has_attentions(stacks_of(out)):
        return out
    del out
    with lm.attention("eager"):
        out = forward()
    if not _has_attentions(stacks_of(out)):
        raise InputError(f"{lm.card.name} did not return attention weights, even with eager attention.")
    return out


def capture(lm: LoadedModel, text: str, target: Optional[str] = None, *,
            job: Optional[Job] = None, max_new_target_tokens: int = 64,
            resident: Optional[bool] = None, thumb_size: int = THUMB_SIZE,
            prefetch: Sequence[tuple[str, int, int]] = ()) -> Trace:
    """Run one forward pass with attentions and hidden states; see the module docstring.

    For encoder-decoder models the decoder reads ``target``; when no target is given the
    model's own greedy output is used, so cross-attention shows what the model does.
    ``resident`` (default: on for any device but the CPU) keeps the full tensors on the
    device and transfers only thumbnails, entropies and the heads named in ``prefetch``
    (``(stack, layer, head)``; the first head of the first stack when empty).
    """
    import torch

    job = Job.ensure(job)
    if text is None or text == "":
        raise InputError("The prompt is empty: type some text first.")
    resident = (lm.device != "cpu") if resident is None else bool(resident)
    warnings: list[str] = []
    notes: list[str] = []
    enc, w = encode(lm, text)
    warnings += w
    if not enc["ids"]:
        if lm.kind == KIND_DECODER and lm.tokenizer.bos_token_id is not None:
            enc = {"ids": [lm.tokenizer.bos_token_id], "offsets": [(0, 0)], "special": [True],
                   "tokens": [lm.tokenizer.bos_token]}
        else:
            raise InputError("The prompt gives no tokens under this tokenizer.")
    if target and lm.kind != KIND_SEQ2SEQ:
        warnings.append(f"A target text only applies to encoder-decoder models; {lm.card.name} is {lm.kind}, so it was ignored.")
    impl = getattr(lm.model.config, "_attn_implementation", None) or "eager"
    if impl != "eager":
        notes.append(f"{lm.card.name} runs with {impl} attention, which cannot return attention weights; "
                     "this capture switched to eager attention (same numbers, weights included).")
    job.progress(0.1, "forward pass")
    dev = lm.device
    ids = torch.tensor([enc["ids"]], device=dev)
    tgt_ids_list: list[int] = []
    store = _store_device if resident else _store_host
    with torch.inference_mode(), device_errors(dev):
        if lm.kind == KIND_SEQ2SEQ:
            start = lm.model.config.decoder_start_token_id
            if start is None:
                start = lm.tokenizer.pad_token_id or 0
            if target:
                tgt = lm.tokenizer(text_target=target, add_special_tokens=True)["input_ids"]
                limit = lm.card.context
                if limit and len(tgt) + 1 > limit:
                    warnings.append(f"The target was cut to {limit - 1} tokens.")
                    tgt = tgt[: limit - 1]
                tgt_ids_list = [int(start)] + list(tgt)
            else:
                gen = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                        max_new_tokens=max_new_target_tokens, do_sample=False)
                tgt_ids_list = [int(t) for t in gen[0].tolist()]
                if tgt_ids_list[0] != start:
                    tgt_ids_list = [int(start)] + tgt_ids_list
            dec = torch.tensor([tgt_ids_list], device=dev)

            def forward():
                return lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=dec,
                                output_attentions=True, output_hidden_states=True, return_dict=True)

            out = _eager_forward(lm, forward, lambda o: (o.encoder_attentions, o.decoder_attentions,
                                                         o.cross_attentions))
            job.progress(0.7, "storing results")
            attentions = {
                "encoder": store(out.encoder_attentions),
                "decoder": store(out.decoder_attentions, causal=True),
                "cross": store(out.cross_attentions),
            }
            hidden = {"encoder": _hidden(out.encoder_hidden_states, resident),
                      "decoder": _hidden(out.decoder_hidden_states, resident)}
        else:
            def forward():
                return lm.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                output_attentions=True, output_hidden_states=True, return_dict=True)

            out = _eager_forward(lm, forward, lambda o: (o.attentions,))
            job.progress(0.7, "storing results")
            attentions = {"self": store(out.attentions, causal=lm.kind == KIND_DECODER)}
            hidden = {"self": _hidden(out.hidden_states, resident)}
        raw_logits = getattr(out, "logits", None)
        if raw_logits is None:
            logits = np.zeros((0, 0), np.float32)
        elif resident:
            logits = DeviceArray(raw_logits[0])
        else:
            logits = np.ascontiguousarray(raw_logits[0].float().cpu().numpy())
        del out
        kv = int(getattr(lm.card, "kv_heads", 0) or 0)
        kv_heads = {s: (kv if s in ("self", "decoder") and kv else int(attentions[s].shape[1])) for s in attentions}
        tr = Trace(
            model=lm.card.name, kind=lm.kind, text=text,
            input_ids=np.asarray(enc["ids"], dtype=np.int64), tokens=list(enc["tokens"]),
            offsets=enc["offsets"], special=enc["special"],
            attentions=attentions, hidden=hidden, logits=logits,
            target_text=(target or "") if lm.kind == KIND_SEQ2SEQ else "",
            target_ids=np.asarray(tgt_ids_list, dtype=np.int64) if tgt_ids_list else None,
            target_tokens=lm.tokenizer.convert_ids_to_tokens(tgt_ids_list) if tgt_ids_list else [],
            warnings=warnings, notes=notes, kv_heads=kv_heads, device=str(dev),
        )
        if resident:
            # Only the first head crosses over now; thumbnails and entropies are reduced on the
            # device when a view asks for them (tr.thumbnails / tr.entropy, on the worker).
            for s, layer, head in (prefetch or [(tr.stacks[0], 0, 0)]):
                if s in tr.attentions and layer < tr.layers(s) and head < tr.heads(s):
                    tr.head(s, layer, head)
    job.progress(1.0, "done")
    return tr
