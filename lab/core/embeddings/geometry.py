"""The geometry of an embedding matrix: nearest neighbours by cosine, and a 2-D PCA map."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from lab.core.embeddings.matrices import INPUT, index, piece_label
from lab.core.errors import InputError


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
