"""The logit lens (nostalgebraist 2020): every layer's hidden state read through the model's
own final norm and output head."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.models import KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors
from lab.core.trace.record import Trace


@dataclass
class LensLayer:
    layer: int                      # 0 = embeddings, i = after block i
    top_ids: list[int]
    top_tokens: list[str]
    top_probs: list[float]
    final_rank: int                 # 1-based rank of the model's final prediction at this layer
    final_prob: float


@dataclass
class LensResult:
    stack: str
    position: int
    token: str                      # the token at ``position`` (the lens predicts what follows it)
    final_id: int
    final_token: str
    layers: list[LensLayer]
    norm: str                       # the final norm used ("transformer.ln_f", ...) or "" if none
    head: str                       # the output head used
    max_abs_diff_last: float        # |lens at the last layer - the model's own logits|, max
    logits: Optional[np.ndarray] = field(default=None, repr=False)   # lens_logits[layer, vocab]

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d.pop("logits", None)
        return d


def _module_at(root, path: str):
    m = root
    for part in path.split("."):
        m = getattr(m, part, None)
        if m is None:
            return None
    return m


# Final norms by where architectures keep them (first match wins).
_NORM_PATHS = ("transformer.ln_f", "model.norm", "model.decoder.final_layer_norm", "model.final_layernorm",
               "gpt_neox.final_layer_norm", "decoder.final_layer_norm", "model.decoder.norm", "transformer.norm_f",
               "transformer.final_layernorm", "model.language_model.norm")
# Masked-LM heads that hold their own transform (dense + act + LayerNorm) before the decoder.
_MLM_HEAD_PATHS = ("cls", "lm_head", "vocab_projector", "generator_lm_head", "pred_layer")


def lens_parts(lm: LoadedModel):
    """(norm module or None, its name, head function, its name, last_is_normed) for a model.

    GPT-2 (ln_f), Llama (model.norm), T5's decoder (final_layer_norm) hand back a last
    hidden state that already went through the final norm; BERT-style masked LMs have no
    final norm outside their head (cls.predictions: dense, GELU, LayerNorm, decoder).
    T5 with ``scale_decoder_outputs`` (tied embeddings) scales by d_model**-0.5 first.
    """
    model = lm.model
    cfg = model.config
    if lm.kind == KIND_ENCODER:
        for p in _MLM_HEAD_PATHS:
            head = _module_at(model, p)
            if head is not None and callable(head):
                return None, "", head, p, False
        raise InputError(f"{lm.card.name} has no output head, so there is nothing to read layers through.")
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out_emb is None:
        raise InputError(f"{lm.card.name} has no output head, so there is nothing to read layers through.")
    norm, norm_name = None, ""
    for p in _NORM_PATHS:
        m = _module_at(model, p)
        if m is not None:
            norm, norm_name = m, p
            break
    head_name = "lm_head"
    head = out_emb
    if lm.kind == KIND_SEQ2SEQ and getattr(cfg, "model_type", "") in ("t5", "mt5", "umt5"):
        scale = bool(getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", False)))
        if scale:
            d = cfg.d_model

            def head(h, _e=out_emb, _d=d):
                return _e(h * (_d ** -0.5))

            head_name = "lm_head(h · d_model^-0.5)"
    return norm, norm_name, head, head_name, norm is not None


def logit_lens(lm: LoadedModel, trace_or_hidden, position: int = -1, k: int = 5, *,
               stack: Optional[str] = None, final_logits=None, tokens: Optional[list[str]] = None) -> LensResult:
    """Top-k predictions read from every layer's hidden state at ``position``.

    Each layer's own state goes through the model's final norm and output head; the last
    layer's state (already normed by the model for GPT-2, Llama and T5) is not normed
    twice, so the last row equals the model's own logits. ``trace_or_hidden`` is a Trace
    or ``hidden[layer + 1, dim]`` (then pass ``final_logits[vocab]`` for the ranks).
    """
    import torch

    if isinstance(trace_or_hidden, Trace):
        tr = trace_or_hidden
        stack = stack or ("decoder" if tr.kind == KIND_SEQ2SEQ else "self")
        if stack not in tr.hidden:
            raise InputError(f"The logit lens reads the {'decoder' if tr.kind == KIND_SEQ2SEQ else 'self'} stack, not {stack!r}.")
        hid = tr.hidden[stack]
        n = hid.shape[1]
        pos = position if position >= 0 else n + position
        if not 0 <= pos < n:
            raise InputError(f"Position {position} is out of range: the text has {n} tokens.")
        states = np.asarray(hid[:, pos], dtype=np.float32)
        if final_logits is None and getattr(tr.logits, "shape", (0,))[0] > pos:
            final_logits = tr.logits[pos]
        toks = tr.query_tokens(stack) if stack in ("decoder", "cross") else tr.tokens
        token = toks[pos] if pos < len(toks) else ""
    else:
        states = np.asarray(trace_or_hidden, dtype=np.float32)
        stack = stack or ""
        pos = position
        token = tokens[pos] if tokens else ""
    norm, norm_name, head, head_name, last_normed = lens_parts(lm)
    param = next(lm.model.parameters())
    with torch.inference_mode(), device_errors(lm.device):
        h = torch.from_numpy(states).to(device=param.device, dtype=param.dtype)
        rows = []
        for i in range(h.shape[0]):
            x = h[i:i + 1]
            if norm is not None and not (last_normed and i == h.shape[0] - 1):
                x = norm(x)
            rows.append(head(x)[0])
        lens = torch.stack(rows).float()
        probs = torch.softmax(lens, dim=-1)
        top_p, top_i = probs.topk(k, dim=-1)
        final = torch.as_tensor(np.asarray(final_logits, dtype=np.float32), device=lens.device) \
            if final_logits is not None else lens[-1]
        final_id = int(final.argmax())
        ranks = (lens > lens[:, final_id:final_id + 1]).sum(dim=-1) + 1
        diff = float((lens[-1] - final).abs().max()) if final_logits is not None else 0.0
        lens_np = lens.cpu().numpy()
        top_i, top_p = top_i.cpu().numpy(), top_p.cpu().numpy()
        ranks = ranks.cpu().numpy()
        final_probs = probs[:, final_id].cpu().numpy()
    tok = lm.tokenizer
    layers = [LensLayer(layer=i, top_ids=[int(t) for t in top_i[i]],
                        top_tokens=tok.convert_ids_to_tokens([int(t) for t in top_i[i]]),
                        top_probs=[float(p) for p in top_p[i]], final_rank=int(ranks[i]),
                        final_prob=float(final_probs[i]))
              for i in range(len(top_i))]
    return LensResult(stack=stack, position=int(pos), token=token, final_id=final_id,
                      final_token=tok.convert_ids_to_tokens([final_id])[0], layers=layers,
                      norm=norm_name, head=head_name, max_abs_diff_last=diff, logits=lens_np)
