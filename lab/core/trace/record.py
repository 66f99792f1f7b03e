"""The Trace: one captured forward pass (tokens, attentions, hidden states, logits) and its labels."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.models import KIND_DECODER
from lab.core.trace.aggregates import (
    THUMB_SIZE,
    head_entropy,
    kv_groups,
    max_over_heads,
    mean_over_heads,
    rollout,
    thumbnails,
)
from lab.core.trace.arrays import _is_resident

STACK_LABELS = {
    "self": "self-attention",
    "encoder": "encoder self-attention",
    "decoder": "decoder self-attention",
    "cross": "cross-attention (decoder → encoder)",
}


@dataclass
class Trace:
    model: str
    kind: str
    text: str
    input_ids: np.ndarray                 # [T] int64
    tokens: list[str]                     # the tokenizer's pieces (convert_ids_to_tokens)
    offsets: list[tuple[int, int]]        # character span of each token in ``text``
    special: list[bool]
    attentions: dict[str, Any]            # stack -> attn[layer, head, query, key] (ndarray or DeviceArray)
    hidden: dict[str, Any]                # stack -> hidden[layer + 1, position, dim]
    logits: Any                           # [position, vocab] float32 (decoder side for seq2seq)
    target_text: str = ""
    target_ids: Optional[np.ndarray] = None   # decoder input ids for seq2seq (start token first)
    target_tokens: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)        # informational (e.g. switched to eager)
    kv_heads: dict[str, int] = field(default_factory=dict)  # stack -> key/value heads (GQA)
    device: str = "cpu"
    # Host copies computed where the tensors live: stack -> thumbs[layer, head, s, s] and
    # stack -> entropy[layer, head] (nats, mean over the query rows).
    thumbs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    entropies: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _heads: dict = field(default_factory=dict, repr=False, compare=False)

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

    # --- reading attention ---------------------------------------------------------------
    def causal(self, stack: str) -> bool:
        """True where queries cannot see later keys (decoder self-attention)."""
        return stack == "decoder" or (stack == "self" and self.kind == KIND_DECODER)

    def mask(self, stack: str) -> Optional[np.ndarray]:
        """bool[query, key], True where the model cannot look (the future); None if nothing is masked."""
        if not self.causal(stack):
            return None
        q, k = self.attentions[stack].shape[2:]
        return np.triu(np.ones((q, k), dtype=bool), k=1 + (k - q))

    def is_resident(self, stack: str) -> bool:
        """True if the stack's full tensor stays on the device (GPU capture)."""
        return _is_resident(self.attentions[stack])

    def head_ready(self, stack: str, layer: int, head: int) -> bool:
        """True if ``head()`` returns without a device transfer (safe on the GUI thread)."""
        return not self.is_resident(stack) or (stack, layer, head) in self._heads

    def head(self, stack: str, layer: int, head: int) -> np.ndarray:
        """attn[query, key] of one head, float32 (transfers that head only, then caches it)."""
        key = (stack, int(layer), int(head))
        if key in self._heads:
            return self._heads[key]
        a = self.attentions[stack]
        out = np.asarray(a[layer, head], dtype=np.float32)
        if self.is_resident(stack):
            self._heads[key] = out
        return out

    def layer_heads(self, stack: str, layer: int) -> np.ndarray:
        """attn[head, query, key] of one layer, float32."""
        return np.asarray(self.attentions[stack][layer], dtype=np.float32)

    def thumbnails(self, stack: str, size: int = THUMB_SIZE) -> np.ndarray:
        """thumbs[layer, head, s, s]: block maxima of every head (sharp heads stay visible)."""
        key = f"{stack}@{size}"
        if key not in self.thumbs:
            self.thumbs[key] = thumbnails(self.attentions[stack], size)
        return self.thumbs[key]

    def entropy(self, stack: str) -> np.ndarray:
        """entropy[layer, head]: mean over query rows of each row's entropy, in nats."""
        if stack not in self.entropies:
            self.entropies[stack] = head_entropy(self.attentions[stack])
        return self.entropies[stack]

    def aggregate(self, stack: str, layer: int, how: str) -> np.ndarray:
        """[query, key] float32: ``mean`` or ``max`` over the layer's heads, or ``rollout``
        through layers 0..layer (self-attention stacks only)."""
        a = self.attentions[stack]
        if how == "mean":
            return mean_over_heads(a[layer] if not _is_resident(a) else a.tensor[layer])
        if how == "max":
            return max_over_heads(a[layer] if not _is_resident(a) else a.tensor[layer])
        if how == "rollout":
            if stack == "cross":
                raise InputError("Rollout follows a token through self-attention layers; it is not defined for cross-attention.")
            return rollout(a.tensor if _is_resident(a) else a, upto=layer)[-1]
        raise InputError(f"Unknown aggregate {how!r}; choose mean, max or rollout.")

    def kv_groups(self, stack: str) -> list[list[int]]:
        """Query heads sharing each key/value head (grouped-query attention), in HF's order."""
        return kv_groups(self.heads(stack), self.kv_heads.get(stack, self.heads(stack)))

    def stored_bytes(self) -> dict[str, int]:
        """Bytes the stored attentions take: ``host`` (numpy) and ``device`` (kept on the GPU)."""
        host = device = 0
        for a in self.attentions.values():
            if _is_resident(a):
                device += a.device_bytes
                host += a.nbytes
            else:
                host += a.nbytes
        host += sum(v.nbytes for v in self._heads.values()) + sum(v.nbytes for v in self.thumbs.values())
        return {"host": int(host), "device": int(device)}


_PIECE_MARKS = {"Ġ": " ", "▁": " ", "Ċ": "⏎", "ĉ": "⇥"}


def display_token(piece: str, text: str = "", span: Optional[tuple[int, int]] = None) -> str:
    """A readable label: the token's own slice of the text when it has one, else its piece."""
    if span is not None and text and span[1] > span[0]:
        s = text[span[0]:span[1]]
    else:
        s = "".join(_PIECE_MARKS.get(ch, ch) for ch in piece)
    stripped = s.strip()
    if stripped:
        return stripped
    return "⏎" if "\n" in s else "␣" if s else piece


def display_tokens(tr: Trace, stack: str, axis: str = "query") -> list[str]:
    """Labels for a stack's query or key axis (source tokens from the text, target pieces)."""
    toks = tr.query_tokens(stack) if axis == "query" else tr.key_tokens(stack)
    if toks is tr.tokens:
        return [display_token(p, tr.text, tuple(o) if not sp else None)
                for p, o, sp in zip(tr.tokens, tr.offsets, tr.special)]
    return [display_token(p) for p in toks]


def word_token(tr: Trace, stack: str, word: str) -> Optional[int]:
    """The query token to look from for ``word``: its first piece when the tokenizer cut it
    into several ("bank" -> "b", "ank"), by character span; None when it is not there."""
    if tr.query_tokens(stack) is not tr.tokens:          # target pieces have no span in the text
        labels = [t.lower() for t in display_tokens(tr, stack, "query")]
        return labels.index(word.lower()) if word.lower() in labels else None
    from lab.core.embeddings.context import word_span

    try:
        s, e = word_span(tr.text, word)
    except InputError:
        return None
    for i, ((a, b), special) in enumerate(zip(tr.offsets, tr.special)):
        if not special and a < e and b > s:
            return i
    return None
