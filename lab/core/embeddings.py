"""Embedding rows, nearest neighbours, a PCA projection, positional encodings, and how a
word's hidden state changes with its context.

Matrices come from the loaded model itself (``get_input_embeddings`` /
``get_output_embeddings``), copied once to float32 numpy and cached per model, with
row-normalised copies for cosine search: a neighbour query is one matrix-vector product.
"""
from __future__ import annotations

import csv
import io
import re
import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lab.core import tokens as core_tokens
from lab.core.errors import InputError
from lab.core.jobs import Job

INPUT = "input"
OUTPUT = "output"

ROPE_SOURCE = "RoPE: Su et al. 2021, arXiv 2104.09864 (angle = position x base^(-2i/d))"
SINUSOID_SOURCE = "Sinusoidal: Vaswani et al. 2017, arXiv 1706.03762 (PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos)"
T5_SOURCE = "Relative position buckets: Raffel et al. 2020 (T5), arXiv 1910.10683"


# --- matrices, cached per model ---------------------------------------------------------

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


# --- rows of the prompt ------------------------------------------------------------------

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


# --- nearest neighbours ----------------------------------------------------------------------

@dataclass
class Neighbour:
    id: int
    piece: str
    label: str
    cosine: float


@dataclass
class Neighbours:
    token_id: int
    token_label: str
    which: str                  # input or output
    items: list[Neighbour]

    def to_json(self) -> dict:
        return {"token_id": self.token_id, "token": self.token_label, "matrix": self.which,
                "neighbours": [{"id": n.id, "piece": n.piece, "cosine": round(float(n.cosine), 6)} for n in self.items]}


def neighbours(lm, token_id: int, k: int = 10, which: str = INPUT) -> Neighbours:
    """The ``k`` vocabulary tokens whose embedding rows are closest (cosine) to the token's."""
    idx = index(lm, which)
    token_id = int(token_id)
    if not 0 <= token_id < idx.matrix.shape[0]:
        raise InputError(f"Token id {token_id} is outside the vocabulary (0..{idx.matrix.shape[0] - 1}).")
    ids, cos = idx.search(idx.matrix[token_id], k, exclude=(token_id,))
    tok = lm.tokenizer
    pieces = tok.convert_ids_to_tokens([int(i) for i in ids])
    items = [Neighbour(int(i), p if p is not None else "", piece_label(tok, p), float(c)) for i, p, c in zip(ids, pieces, cos)]
    return Neighbours(token_id=token_id, token_label=piece_label(tok, tok.convert_ids_to_tokens(token_id)),
                      which=which, items=items)


def neighbours_csv(groups: list[Neighbours]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["matrix", "token_id", "token", "rank", "id", "piece", "cosine"])
    for g in groups:
        for r, n in enumerate(g.items, 1):
            w.writerow([g.which, g.token_id, g.token_label, r, n.id, n.piece, f"{n.cosine:.6f}"])
    return buf.getvalue()


# --- 2-D projection -----------------------------------------------------------------------------

def pca(points: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project ``points[n, dim]`` on their first principal components: (coords, explained ratio)."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        return np.zeros((0, components), np.float32), np.zeros(components, np.float32)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.zeros((1, components), np.float32), np.zeros(components, np.float32)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    c = min(components, vt.shape[0])
    coords = x @ vt[:c].T
    # Fix each axis's sign (largest loading positive) so the picture does not flip.
    signs = np.sign(vt[:c][np.arange(c), np.abs(vt[:c]).argmax(axis=1)])
    coords = coords * np.where(signs == 0, 1, signs)
    var = s ** 2
    ratio = var[:c] / var.sum() if var.sum() > 0 else np.zeros(c)
    if c < components:
        coords = np.hstack([coords, np.zeros((coords.shape[0], components - c))])
        ratio = np.concatenate([ratio, np.zeros(components - c)])
    return coords.astype(np.float32), ratio.astype(np.float32)


@dataclass
class Projection:
    coords: np.ndarray          # [point, 2]
    ids: list[int]
    labels: list[str]
    kinds: list[str]            # "prompt" or "neighbour"
    of: list[int]               # for a neighbour, the prompt point it belongs to (-1 for prompt points)
    explained: np.ndarray       # variance ratio of the two axes

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["kind", "id", "token", "pc1", "pc2", "neighbour_of"])
        for (x, y), i, lab, kind, of in zip(self.coords, self.ids, self.labels, self.kinds, self.of):
            w.writerow([kind, i, lab, f"{x:.6g}", f"{y:.6g}", self.labels[of] if of >= 0 else ""])
        return buf.getvalue()


def projection(lm, ids: list[int], per_token: int = 3, max_tokens: int = 40) -> Projection:
    """PCA of the prompt's distinct token embeddings plus each one's nearest neighbours."""
    idx = index(lm, INPUT)
    tok = lm.tokenizer
    uniq: list[int] = []
    for i in ids:
        if i not in uniq and 0 <= i < idx.matrix.shape[0]:
            uniq.append(int(i))
        if len(uniq) >= max_tokens:
            break
    point_ids = list(uniq)
    kinds = ["prompt"] * len(uniq)
    of = [-1] * len(uniq)
    seen = set(uniq)
    for j, t in enumerate(uniq):
        nid, _ = idx.search(idx.matrix[t], per_token + len(uniq), exclude=(t,))
        added = 0
        for n in nid:
            if int(n) not in seen and added < per_token:
                seen.add(int(n)); point_ids.append(int(n)); kinds.append("neighbour"); of.append(j); added += 1
    pieces = tok.convert_ids_to_tokens(point_ids)
    coords, ratio = pca(idx.matrix[point_ids] if point_ids else np.zeros((0, idx.matrix.shape[1])))
    return Projection(coords=coords, ids=point_ids, labels=[piece_label(tok, p) for p in pieces],
                      kinds=kinds, of=of, explained=ratio)


# --- positional encodings -----------------------------------------------------------------------

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


# --- context changes meaning ------------------------------------------------------------------------

BANK_PRESET = ("I sat on the river bank", "bank", "I deposited cash at the bank", "bank")


@dataclass
class ContextSimilarity:
    layers: list[str]               # "embeddings", "layer 1", ...
    cosine: np.ndarray              # [layer + 1]
    text_a: str
    text_b: str
    word_a: str
    word_b: str
    tokens_a: list[str]             # the pieces that make up the word in each sentence
    tokens_b: list[str]
    positions_a: list[int]
    positions_b: list[int]
    note: str = ""

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "cosine", "sentence_a", "sentence_b"])
        for i, (lab, c) in enumerate(zip(self.layers, self.cosine)):
            w.writerow([lab, f"{c:.6f}", self.text_a if i == 0 else "", self.text_b if i == 0 else ""])
        return buf.getvalue()


def word_span(text: str, word: str) -> tuple[int, int]:
    """Character span of ``word`` in ``text``: whole-word match first, case-insensitive."""
    word = (word or "").strip()
    if not word:
        raise InputError("Choose a word to follow (for example: bank).")
    m = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, flags=re.IGNORECASE)
    if m is None:
        m = re.search(re.escape(word), text, flags=re.IGNORECASE)
    if m is None:
        raise InputError(f"{word!r} does not occur in {text!r}.")
    return m.start(), m.end()


def word_tokens(tz: core_tokens.Tokenization, word: str) -> list[int]:
    s, e = word_span(tz.text, word)
    out = [i for i in range(tz.count) if not tz.special[i] and tz.starts[i] < e and tz.ends[i] > s]
    if not out:
        raise InputError(f"No token of {tz.model or 'the model'} covers {word!r} in {tz.text!r}.")
    return out


def hidden_states(lm, text: str, job: Optional[Job] = None) -> tuple[core_tokens.Tokenization, np.ndarray]:
    """Tokens and hidden states ``[layer + 1, position, dim]`` (the encoder's for seq2seq)."""
    import torch

    from lab.core.models import KIND_SEQ2SEQ, device_errors

    job = Job.ensure(job)
    if not text or not text.strip():
        raise InputError("Both sentences need some text.")
    tz = core_tokens.tokenize(lm.tokenizer, text, model=lm.card.name)
    limit = lm.card.context
    if limit and tz.count > limit:
        raise InputError(f"The sentence is {tz.count} tokens but {lm.card.name} reads at most {limit}.")
    ids = torch.tensor([tz.ids], device=lm.device)
    mask = torch.ones_like(ids)
    with torch.inference_mode(), device_errors(lm.device):
        if lm.kind == KIND_SEQ2SEQ:
            out = lm.model.get_encoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        else:
            out = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        hs = out.hidden_states
        stacked = torch.stack([h[0] for h in hs]).float().cpu().numpy()
    return tz, stacked


def context_similarity(lm, text_a: str, word_a: str, text_b: str, word_b: Optional[str] = None,
                       job: Optional[Job] = None) -> ContextSimilarity:
    """Cosine similarity of a word's hidden state in two sentences, at every layer.

    A word cut into several tokens is represented by the mean of its tokens' states.
    """
    job = Job.ensure(job)
    word_b = word_b or word_a
    job.progress(0.05, "sentence A")
    tz_a, h_a = hidden_states(lm, text_a, job)
    pa = word_tokens(tz_a, word_a)
    job.progress(0.5, "sentence B")
    tz_b, h_b = hidden_states(lm, text_b, job)
    pb = word_tokens(tz_b, word_b)
    va = h_a[:, pa, :].mean(axis=1)
    vb = h_b[:, pb, :].mean(axis=1)
    cos = (va * vb).sum(axis=1) / np.maximum(np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1), 1e-12)
    layers = ["embeddings"] + [f"layer {i}" for i in range(1, h_a.shape[0])]
    note = ""
    if len(pa) > 1 or len(pb) > 1:
        note = "The word is cut into several tokens; the mean of their hidden states is compared."
    job.progress(1.0, "done")
    return ContextSimilarity(layers=layers, cosine=cos.astype(np.float32), text_a=text_a, text_b=text_b,
                             word_a=word_a, word_b=word_b,
                             tokens_a=[tz_a.label(i, True) for i in pa], tokens_b=[tz_b.label(i, True) for i in pb],
                             positions_a=pa, positions_b=pb, note=note)


__all__ = ["NeighbourIndex", "index", "tied", "rows", "neighbours", "pca", "projection", "positional",
           "context_similarity", "sinusoidal", "rope_table", "cosine_matrix", "BANK_PRESET"]
