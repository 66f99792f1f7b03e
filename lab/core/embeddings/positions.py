"""Positional encodings: learned tables, sinusoids, RoPE and relative-position biases."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np

ROPE_SOURCE = "RoPE: Su et al. 2021, arXiv 2104.09864 (angle = position x base^(-2i/d))"
SINUSOID_SOURCE = "Sinusoidal: Vaswani et al. 2017, arXiv 1706.03762 (PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos)"
T5_SOURCE = "Relative position buckets: Raffel et al. 2020 (T5), arXiv 1910.10683"


@dataclass
class Positions:
    kind: str                   # learned, rope, sinusoidal, relative
    matrix: np.ndarray          # [position, feature] (relative: [query, key] bias)
    similarity: np.ndarray      # [position, position] cosine (relative: the bias itself)
    feature_label: str          # what the matrix's columns are
    source: str                 # where the numbers come from
    note: str = ""

    def csv_text(self, what: str = "matrix") -> str:
        data = self.matrix if what == "matrix" else self.similarity
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = "position" if what != "matrix" or self.kind == "relative" else "feature"
        w.writerow(["position"] + [f"{cols}{j}" for j in range(data.shape[1] if data.ndim == 2 else 0)])
        for i, row in enumerate(data):
            w.writerow([i] + [f"{x:.6g}" for x in row])
        return buf.getvalue()


def cosine_matrix(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    n = np.linalg.norm(m, axis=1, keepdims=True)
    u = m / np.maximum(n, 1e-12)
    return np.ascontiguousarray(u @ u.T)


def sinusoidal(positions: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """The fixed encoding of Vaswani et al. 2017: [position, dim]."""
    p = np.arange(positions, dtype=np.float64)[:, None]
    i = np.arange(0, dim, 2, dtype=np.float64)[None, :]
    angle = p / np.power(base, i / dim)
    out = np.zeros((positions, dim), np.float64)
    out[:, 0::2] = np.sin(angle)
    out[:, 1::2] = np.cos(angle[:, : dim // 2])
    return out.astype(np.float32)


def rope_table(positions: int, inv_freq: np.ndarray) -> np.ndarray:
    """cos and sin of each rotation angle: [position, 2 x frequencies] (cos first, then sin).

    The dot product of two rows is sum_i cos((p - q) theta_i), so their similarity
    depends only on the distance between positions: the relative property of RoPE.
    """
    p = np.arange(positions, dtype=np.float64)[:, None]
    ang = p * np.asarray(inv_freq, dtype=np.float64)[None, :]
    return np.hstack([np.cos(ang), np.sin(ang)]).astype(np.float32)


def _learned_table(model):
    import torch

    best = None
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Embedding):
            continue
        low = name.lower()
        if "relative" in low or "token_type" in low or "word" in low:
            continue
        if "position" in low or low.endswith("wpe") or "embed_positions" in low or low.endswith("pos_emb"):
            best = (name, mod)
            break
    return best


def learned_position_table(model) -> Optional[str]:
    """The module name of the position table added to the token embeddings, or None."""
    found = _learned_table(model)
    return None if found is None else found[0]


def _rope_inv_freq(lm) -> tuple[Optional[np.ndarray], str]:
    for name, buf in lm.model.named_buffers():
        if name.endswith("inv_freq") and "original" not in name:
            return buf.detach().float().cpu().numpy(), name
    cfg = lm.model.config
    params = getattr(cfg, "rope_parameters", None) or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    theta = theta or getattr(cfg, "rope_theta", None)
    if theta:
        heads = lm.card.heads or 1
        head_dim = getattr(cfg, "head_dim", None) or (lm.card.hidden // heads)
        return 1.0 / np.power(float(theta), np.arange(0, head_dim, 2, dtype=np.float64) / head_dim), "config rope_theta"
    return None, ""


def positional(lm, positions: Optional[int] = None) -> Positions:
    """The model's own position information, as a heatmap and a similarity matrix."""
    limit = lm.card.context or 512
    n = int(positions or min(limit, 128))
    n = max(1, min(n, limit))
    found = _learned_table(lm.model)
    if found is not None:
        name, mod = found
        w = mod.weight.detach().float().cpu().numpy()
        offset = 2 if type(mod).__name__.endswith("LearnedPositionalEmbedding") else 0   # BART/OPT rows start at 2
        table = w[offset: offset + n]
        sinus = "Sinusoidal" in type(mod).__name__
        return Positions(kind="sinusoidal" if sinus else "learned", matrix=np.ascontiguousarray(table),
                         similarity=cosine_matrix(table),
                         feature_label="dimension",
                         source=f"the model's {'fixed sinusoidal' if sinus else 'learned'} position table {name} "
                                f"({w.shape[0]} x {w.shape[1]})" + (f"; {SINUSOID_SOURCE}" if sinus else ""),
                         note="Each position adds its own row to the token's embedding, so the same words in "
                              "another order give different vectors.")
    inv_freq, where = _rope_inv_freq(lm)
    if inv_freq is not None:
        table = rope_table(n, inv_freq)
        return Positions(kind="rope", matrix=table, similarity=cosine_matrix(table),
                         feature_label=f"cos | sin of {len(inv_freq)} rotation frequencies",
                         source=f"{ROPE_SOURCE}; frequencies from {where}",
                         note="RoPE adds nothing to the embeddings: it rotates queries and keys by an angle "
                              "that grows with the position, so attention scores depend on the distance "
                              "between tokens.")
    bias = _relative_bias(lm, n)
    if bias is not None:
        return Positions(kind="relative", matrix=bias, similarity=bias, feature_label="key position",
                         source=T5_SOURCE + " (mean over heads, encoder layer 1)",
                         note="This model has no position table: each attention score gets a learned bias "
                              "that depends on the bucketed distance between query and key.")
    hidden = lm.card.hidden or 64
    table = sinusoidal(n, hidden)
    return Positions(kind="sinusoidal", matrix=table, similarity=cosine_matrix(table), feature_label="dimension",
                     source=SINUSOID_SOURCE,
                     note="No position table or rotation was found in this model; the sinusoidal formula is "
                          "drawn for reference.")


def _relative_bias(lm, n: int) -> Optional[np.ndarray]:
    import torch

    for name, mod in lm.model.named_modules():
        if hasattr(mod, "compute_bias") and getattr(mod, "has_relative_attention_bias", False):
            try:
                with torch.inference_mode():
                    b = mod.compute_bias(n, n, device=next(lm.model.parameters()).device)
            except TypeError:
                with torch.inference_mode():
                    b = mod.compute_bias(n, n)
            return np.ascontiguousarray(b[0].float().mean(0).cpu().numpy())
    return None
