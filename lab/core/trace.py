"""One captured forward pass, as plain numpy arrays.

``capture(lm, text, target=None)`` runs the model once with eager attention and returns a
Trace: token ids and pieces with their character offsets, attentions per stack
(``self`` for decoder-only and encoder-only; ``encoder``, ``decoder``, ``cross`` for
encoder-decoder; each ``attn[layer, head, query, key]``), hidden states per layer
(``hidden[stack][layer, position, dim]``, index 0 is the embedding output) and logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors

# Stored attentions above this many bytes at float32 are kept as float16 instead.
FLOAT16_ABOVE_BYTES = 256 * 2**20


@dataclass
class Trace:
    model: str
    kind: str
    text: str
    input_ids: np.ndarray                 # [T] int64
    tokens: list[str]                     # the tokenizer's pieces (convert_ids_to_tokens)
    offsets: list[tuple[int, int]]        # character span of each token in ``text``
    special: list[bool]
    attentions: dict[str, np.ndarray]     # stack -> attn[layer, head, query, key]
    hidden: dict[str, np.ndarray]         # stack -> hidden[layer + 1, position, dim]
    logits: np.ndarray                    # [position, vocab] float32 (decoder side for seq2seq)
    target_text: str = ""
    target_ids: Optional[np.ndarray] = None   # decoder input ids for seq2seq (start token first)
    target_tokens: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def stacks(self) -> list[str]:
        return list(self.attentions)

    def query_tokens(self, stack: str) -> list[str]:
        return self.target_tokens if stack in ("decoder", "cross") else self.tokens

    def key_tokens(self, stack: str) -> list[str]:
        return self.target_tokens if stack == "decoder" else self.tokens

    def layers(self, stack: str) -> int:
        return int(self.attentions[stack].shape[0])

    def heads(self, stack: str) -> int:
        return int(self.attentions[stack].shape[1])


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


def _stack(tensors, dtype) -> np.ndarray:
    """tuple of [1, H, Q, K] per layer -> [L, H, Q, K] numpy, C-contiguous."""
    import torch

    t = torch.stack([a[0] for a in tensors]).float()
    return np.ascontiguousarray(t.to(dtype).cpu().numpy())


def _attn_dtype(n_layers: int, n_heads: int, q: int, k: int):
    import torch

    return torch.float16 if n_layers * n_heads * q * k * 4 > FLOAT16_ABOVE_BYTES else torch.float32


def _hidden(states) -> np.ndarray:
    import torch

    return np.ascontiguousarray(torch.stack([h[0] for h in states]).float().cpu().numpy())


def capture(lm: LoadedModel, text: str, target: Optional[str] = None, *,
            job: Optional[Job] = None, max_new_target_tokens: int = 64) -> Trace:
    """Run one forward pass with attentions and hidden states; see the module docstring.

    For encoder-decoder models the decoder reads ``target``; when no target is given the
    model's own greedy output is used, so cross-attention shows what the model does.
    """
    import torch

    job = Job.ensure(job)
    if text is None or text == "":
        raise InputError("The prompt is empty: type some text first.")
    warnings: list[str] = []
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
    job.progress(0.1, "forward pass")
    dev = lm.device
    ids = torch.tensor([enc["ids"]], device=dev)
    tgt_ids_list: list[int] = []
    with torch.inference_mode(), lm.attention("eager"), device_errors(dev):
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
            out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=dec,
                           output_attentions=True, output_hidden_states=True, return_dict=True)
            job.progress(0.7, "copying results")
            q, k = dec.shape[1], ids.shape[1]
            L, H = len(out.encoder_attentions), out.encoder_attentions[0].shape[1]
            attentions = {
                "encoder": _stack(out.encoder_attentions, _attn_dtype(L, H, k, k)),
                "decoder": _stack(out.decoder_attentions, _attn_dtype(L, H, q, q)),
                "cross": _stack(out.cross_attentions, _attn_dtype(L, H, q, k)),
            }
            hidden = {"encoder": _hidden(out.encoder_hidden_states), "decoder": _hidden(out.decoder_hidden_states)}
        else:
            out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           output_attentions=True, output_hidden_states=True, return_dict=True)
            job.progress(0.7, "copying results")
            atts = out.attentions
            if atts is None or any(a is None for a in atts):
                raise InputError(f"{lm.card.name} did not return attention weights.")
            T = ids.shape[1]
            attentions = {"self": _stack(atts, _attn_dtype(len(atts), atts[0].shape[1], T, T))}
            hidden = {"self": _hidden(out.hidden_states)}
        logits = out.logits[0].float().cpu().numpy() if getattr(out, "logits", None) is not None else np.zeros((0, 0), np.float32)
    tok = lm.tokenizer
    job.progress(1.0, "done")
    return Trace(
        model=lm.card.name, kind=lm.kind, text=text,
        input_ids=np.asarray(enc["ids"], dtype=np.int64), tokens=list(enc["tokens"]),
        offsets=enc["offsets"], special=enc["special"],
        attentions=attentions, hidden=hidden, logits=np.ascontiguousarray(logits, dtype=np.float32),
        target_text=target or "" if lm.kind == KIND_SEQ2SEQ else "",
        target_ids=np.asarray(tgt_ids_list, dtype=np.int64) if tgt_ids_list else None,
        target_tokens=tok.convert_ids_to_tokens(tgt_ids_list) if tgt_ids_list else [],
        warnings=warnings,
    )


__all__ = ["Trace", "capture", "encode", "KIND_DECODER", "KIND_ENCODER", "KIND_SEQ2SEQ"]
