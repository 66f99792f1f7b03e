"""Attention aggregates, computed where the tensors live (numpy on the host, torch on a device).

``mean_over_heads``, ``max_over_heads``, ``rollout`` (Abnar & Zuidema 2020),
``head_entropy``, ``thumbnails`` (block maxima per head) and ``hide_first_token``.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.trace.arrays import _is_resident

# Thumbnail side (pixels) of each head in the model view; reduced where the tensors are.
THUMB_SIZE = 48


def _torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _np32(x) -> np.ndarray:
    if _torch(x):
        return np.ascontiguousarray(x.float().cpu().numpy())
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def mean_over_heads(attn) -> np.ndarray:
    """attn[head, q, k] (or [layer, head, q, k]) -> mean over heads, float32."""
    if _torch(attn):
        return _np32(attn.float().mean(dim=-3))
    return np.asarray(attn, dtype=np.float32).mean(axis=-3)


def max_over_heads(attn) -> np.ndarray:
    if _torch(attn):
        return _np32(attn.float().amax(dim=-3))
    return np.asarray(attn, dtype=np.float32).max(axis=-3)


def rollout(attn, upto: Optional[int] = None, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): R_l = Â_l · R_{l-1}, Â = (1-r)·mean_h(A) + r·I,
    rows renormalised. Returns rollout[layer, q, k] for layers 0..upto (float32).

    The residual connection is why half of each row stays on the token itself.
    """
    L = attn.shape[0] if upto is None else int(upto) + 1
    q, k = attn.shape[-2:]
    if q != k:
        raise InputError("Rollout needs square self-attention (query and key tokens the same).")
    if _torch(attn):
        import torch

        eye = torch.eye(q, device=attn.device, dtype=torch.float32)
        out = torch.empty((L, q, q), device=attn.device, dtype=torch.float32)
        r = eye
        for layer in range(L):
            a = (1 - residual) * attn[layer].float().mean(dim=0) + residual * eye
            a = a / a.sum(dim=-1, keepdim=True)
            r = a @ r
            out[layer] = r
        return _np32(out)
    eye = np.eye(q, dtype=np.float32)
    out = np.empty((L, q, q), dtype=np.float32)
    r = eye
    for layer in range(L):
        a = (1 - residual) * np.asarray(attn[layer], dtype=np.float32).mean(axis=0) + residual * eye
        a /= a.sum(axis=-1, keepdims=True)
        r = a @ r
        out[layer] = r
    return out


def _layer_tensor(attn, layer: int):
    """One layer of a stack as a torch tensor, without converting the rest (torch tensors
    stay where they are; numpy and ``CausalArray`` layers are wrapped or unpacked)."""
    if _torch(attn):
        return attn[layer]
    import torch

    return torch.from_numpy(np.ascontiguousarray(attn[layer]))


def head_entropy(attn) -> np.ndarray:
    """entropy[layer, head] in nats: each row's -sum p log p, averaged over the query rows.

    Low = a sharp head (looks at one token), high = a diffuse one. Zeros (the causal mask)
    contribute nothing, as in the definition (0 log 0 = 0).
    """
    import torch

    if _is_resident(attn):
        attn = attn.tensor
    out = []
    for layer in range(attn.shape[0]):
        p = _layer_tensor(attn, layer).float()
        out.append(-(torch_xlogx(p)).sum(dim=-1).mean(dim=-1))
    return _np32(torch.stack(out))


def torch_xlogx(p):
    import torch

    return torch.special.xlogy(p, p)


def thumbnails(attn, size: int = THUMB_SIZE) -> np.ndarray:
    """thumbs[layer, head, s, s] (s <= size): the maximum of each block, float32."""
    if _is_resident(attn):
        attn = attn.tensor
    L, H, q, k = attn.shape
    fq, fk = max(1, math.ceil(q / size)), max(1, math.ceil(k / size))
    if (fq, fk) == (1, 1):
        return np.stack([_np32(_layer_tensor(attn, layer)) for layer in range(L)])
    import torch
    import torch.nn.functional as F  # torch's pooling is several times faster than numpy's reshape-max

    out = [F.max_pool2d(_layer_tensor(attn, layer).float().unsqueeze(0), (fq, fk), ceil_mode=True)[0]
           for layer in range(L)]
    return _np32(torch.stack(out))


def hide_first_token(matrix: np.ndarray, *, drop_query: bool = True) -> np.ndarray:
    """Drop the first key (the attention sink) and renormalise each row over the rest.

    ``matrix[..., q, k]``; with ``drop_query`` (self-attention) the first query row goes
    too, since it is the same token. Rows that had only the first key become NaN (no
    weight left to share), which the views draw as masked.
    """
    m = np.asarray(matrix, dtype=np.float32)[..., :, 1:]
    if drop_query:
        m = m[..., 1:, :]
    s = m.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(s > 0, m / np.where(s > 0, s, 1), np.nan)
    return out.astype(np.float32)


def kv_groups(heads: int, kv_heads: int) -> list[list[int]]:
    """Query heads per key/value head. HF's ``repeat_kv`` repeats each kv head n times in a
    row, so query head h reads kv head h // (heads // kv_heads)."""
    if not kv_heads or kv_heads >= heads or heads % kv_heads:
        return [[h] for h in range(heads)]
    n = heads // kv_heads
    return [list(range(g * n, (g + 1) * n)) for g in range(kv_heads)]
