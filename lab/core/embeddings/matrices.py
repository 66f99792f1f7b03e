"""Embedding matrices, cached per model, and the embedding rows of a prompt.

Matrices come from the loaded model itself (``get_input_embeddings`` /
``get_output_embeddings``), copied once to float32 numpy and cached per model, with
row-normalised copies for cosine search: a neighbour query is one matrix-vector product.
"""
from __future__ import annotations

import csv
import io
import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lab.core import tokens as core_tokens
from lab.core.errors import InputError

INPUT = "input"
OUTPUT = "output"


@dataclass
class NeighbourIndex:
    """An embedding matrix and its row-normalised copy, ready for cosine search."""

    matrix: np.ndarray          # [vocab, dim] float32, the model's rows
    unit: np.ndarray            # [vocab, dim] float32, rows divided by their norms
    norms: np.ndarray           # [vocab]
    valid: int                  # rows past this (padding rows with no token) are never returned

    @staticmethod
    def from_matrix(matrix: np.ndarray, valid: Optional[int] = None) -> "NeighbourIndex":
        m = np.ascontiguousarray(matrix, dtype=np.float32)
        norms = np.linalg.norm(m, axis=1)
        unit = m / np.maximum(norms, 1e-12)[:, None]
        return NeighbourIndex(matrix=m, unit=np.ascontiguousarray(unit, dtype=np.float32), norms=norms,
                              valid=int(m.shape[0] if valid is None else min(valid, m.shape[0])))

    def search(self, vector: np.ndarray, k: int = 10, exclude: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by cosine with ``vector``: (ids, cosines), best first."""
        v = np.asarray(vector, dtype=np.float32).ravel()
        n = float(np.linalg.norm(v))
        if n == 0.0 or not np.isfinite(n):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        sims = self.unit[: self.valid] @ (v / n)          # the one matrix product
        for e in exclude:
            if 0 <= e < sims.shape[0]:
                sims[e] = -np.inf
        k = max(0, min(k, sims.shape[0] - len(exclude)))
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return top.astype(np.int64), sims[top].astype(np.float32)


_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _module_weight(module):
    w = getattr(module, "weight", None)
    return w


def tied(lm) -> bool:
    """True when the output projection is the input embedding matrix itself."""
    inp = lm.model.get_input_embeddings()
    out = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
    if out is None or _module_weight(out) is None:
        return True
    a, b = _module_weight(inp), _module_weight(out)
    return a is b or (a.shape == b.shape and a.data_ptr() == b.data_ptr())


def has_output_embeddings(lm) -> bool:
    out = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
    return out is not None and _module_weight(out) is not None and out.weight.dim() == 2


def index(lm, which: str = INPUT) -> NeighbourIndex:
    """The cached NeighbourIndex of the model's input (or output) embeddings."""
    per_model = _cache.setdefault(lm.model, {})
    if which in per_model:
        return per_model[which]
    if which == OUTPUT and has_output_embeddings(lm) and not tied(lm):
        module = lm.model.get_output_embeddings()
    elif which in (INPUT, OUTPUT):
        module = lm.model.get_input_embeddings()
    else:
        raise InputError(f"Unknown embedding matrix {which!r}; use input or output.")
    w = module.weight.detach()
    mat = w.float().cpu().numpy()
    idx = NeighbourIndex.from_matrix(mat, valid=len(lm.tokenizer))
    per_model[which] = idx
    return idx


@dataclass
class EmbeddingRows:
    ids: list[int]
    labels: list[str]
    vectors: np.ndarray        # [token, dim] float32: the input embedding rows
    norms: np.ndarray          # [token]

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        dims = self.vectors.shape[1] if self.vectors.ndim == 2 else 0
        w.writerow(["position", "id", "token", "norm"] + [f"d{j}" for j in range(dims)])
        for i, (tid, lab) in enumerate(zip(self.ids, self.labels)):
            w.writerow([i, tid, lab, f"{self.norms[i]:.6g}"] + [f"{x:.6g}" for x in self.vectors[i]])
        return buf.getvalue()


def rows(lm, ids: list[int], labels: Optional[list[str]] = None) -> EmbeddingRows:
    idx = index(lm, INPUT)
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < idx.matrix.shape[0]]
    if bad:
        raise InputError(f"Token id {bad[0]} is outside the embedding matrix ({idx.matrix.shape[0]} rows).")
    vec = idx.matrix[ids] if ids else np.zeros((0, idx.matrix.shape[1]), np.float32)
    labels = labels if labels is not None else [piece_label(lm.tokenizer, p) for p in lm.tokenizer.convert_ids_to_tokens(ids)]
    return EmbeddingRows(ids=ids, labels=list(labels), vectors=np.ascontiguousarray(vec),
                         norms=idx.norms[ids] if ids else np.zeros(0, np.float32))


def piece_label(tok, piece: Optional[str]) -> str:
    """A vocabulary piece written readably (bytes decoded, ␣ for a leading space)."""
    if piece is None:
        return "∅"
    info = core_tokens.tokenizer_info(tok)
    if info.family == core_tokens.FAMILY_BYTE_BPE:
        dec = core_tokens.byte_decoder()
        if all(c in dec for c in piece):
            return core_tokens.visible(core_tokens.hex_bytes(bytes(dec[c] for c in piece))) or "∅"
    if info.family == core_tokens.FAMILY_SENTENCEPIECE:
        return core_tokens.visible(piece.replace("▁", " ")) or "∅"
    return core_tokens.visible(piece) or "∅"
