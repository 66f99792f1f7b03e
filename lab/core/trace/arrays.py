"""Where captured tensors live, and how big they are.

On the CPU they are numpy arrays (float32; float16 above ``FLOAT16_ABOVE_BYTES``). Above
that size a causal stack (decoder self-attention) keeps only its lower triangle, as a
``CausalArray`` that reads like the full array: the future holds exact zeros, so nothing
is lost and 2,048 tokens x 12 layers x 12 heads take 604 MB instead of 1,208 MB. On a GPU
the full tensors stay on the device (copying all attentions of a 1B model at 2,048 tokens
to the host takes seconds, computing them takes milliseconds): a stack is then a
``DeviceArray`` that looks like a read-only numpy array, transfers only what is indexed
(``attn[layer, head]`` moves one head) and materialises the whole array only when
something asks for all of it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

# Stored attentions above this many bytes at float32 are kept as float16 instead.
FLOAT16_ABOVE_BYTES = 256 * 2**20
# ... and causal stacks above this many bytes keep only their lower triangle.
PACK_CAUSAL_ABOVE_BYTES = FLOAT16_ABOVE_BYTES


class _ReadsLikeNumpy:
    """Base of the stored-attention wrappers: any numpy attribute they do not define
    (``sum``, ``astype``, ...) is answered by the whole array, materialised by ``__array__``."""

    def __array__(self, dtype=None, copy=None):
        raise NotImplementedError

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)


class DeviceArray(_ReadsLikeNumpy):
    """A torch tensor kept on its device that reads like a read-only numpy array.

    Indexing transfers only the indexed part (``a[layer, head]`` is one head, float32);
    ``np.asarray(a)`` or any other numpy attribute materialises the whole array once.
    """

    def __init__(self, tensor):
        self._tensor = tensor
        self._host: Optional[np.ndarray] = None

    @property
    def tensor(self):
        return self._tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._tensor.shape)

    @property
    def ndim(self) -> int:
        return self._tensor.dim()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self._tensor.is_floating_point() else np.dtype(np.int64)

    @property
    def device_bytes(self) -> int:
        return self._tensor.numel() * self._tensor.element_size()

    @property
    def nbytes(self) -> int:
        """Bytes held in host memory (0 until materialised)."""
        return 0 if self._host is None else self._host.nbytes

    def __len__(self) -> int:
        return int(self._tensor.shape[0])

    def _to_host(self, t) -> np.ndarray:
        if t.is_floating_point():
            t = t.float()
        return np.ascontiguousarray(t.cpu().numpy())

    def __getitem__(self, index) -> np.ndarray:
        if self._host is not None:
            return self._host[index]
        return self._to_host(self._tensor[index])

    def __array__(self, dtype=None, copy=None):
        if self._host is None:
            self._host = self._to_host(self._tensor)
        return self._host if dtype is None else self._host.astype(dtype)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, device={self._tensor.device}, dtype={self._tensor.dtype})"


class CausalArray(_ReadsLikeNumpy):
    """attn[layer, head, query, key] of a causal stack, stored as its lower triangle only.

    Reads like a read-only numpy array: ``a[layer]`` and ``a[layer, head]`` unpack just
    that part (the future as exact zeros, which is what the model computed), and
    ``np.asarray(a)`` unpacks everything for an export. Nothing is cached unpacked.
    """

    def __init__(self, packed: np.ndarray, query: int, key: int):
        self._packed = packed            # [layer, head, n]: row after row, the keys each query sees
        self._qk = (int(query), int(key))
        self._lens = np.clip(np.arange(query) + (key - query) + 1, 0, key)
        self._starts = np.concatenate([[0], np.cumsum(self._lens)[:-1]]).astype(np.int64)
        if packed.shape[-1] != int(self._lens.sum()):
            raise ValueError("packed attention does not match a causal query x key shape")

    @staticmethod
    def visible(query: int, key: int):
        """bool[query, key] (torch), True where a query can look: the packing order is row-major."""
        import torch

        return torch.ones(query, key, dtype=torch.bool).tril(key - query)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._packed.shape[:2]) + self._qk

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return self._packed.dtype

    @property
    def nbytes(self) -> int:
        return int(self._packed.nbytes + self._lens.nbytes + self._starts.nbytes)

    def __len__(self) -> int:
        return int(self._packed.shape[0])

    def _unpack(self, packed: np.ndarray) -> np.ndarray:
        out = np.zeros(packed.shape[:-1] + self._qk, dtype=packed.dtype)
        for row, (start, n) in enumerate(zip(self._starts.tolist(), self._lens.tolist())):
            out[..., row, :n] = packed[..., start:start + n]   # row slices: ~10x a boolean scatter
        return out

    def __getitem__(self, index) -> np.ndarray:
        idx = index if isinstance(index, tuple) else (index,)
        lead = 0
        while lead < min(2, len(idx)) and isinstance(idx[lead], (int, np.integer)):
            lead += 1
        if lead == 0:
            return np.asarray(self)[index]
        part = self._unpack(self._packed[idx[:lead]])
        rest = idx[lead:]
        return part[rest] if rest else part

    def __array__(self, dtype=None, copy=None):
        full = self._unpack(self._packed)
        return full if dtype is None else full.astype(dtype)

    def __repr__(self) -> str:
        return f"CausalArray(shape={self.shape}, dtype={self.dtype}, stored={self.nbytes:,} bytes)"


def _is_resident(a) -> bool:
    return isinstance(a, DeviceArray)


def _attn_dtype(n_layers: int, n_heads: int, q: int, k: int):
    import torch

    return torch.float16 if n_layers * n_heads * q * k * 4 > FLOAT16_ABOVE_BYTES else torch.float32


def _store_host(tensors, causal: bool = False):
    """tuple of [1, H, Q, K] per layer -> [L, H, Q, K] numpy, C-contiguous, layer by layer
    (no second full-size float32 copy); a large causal stack -> ``CausalArray``."""
    import torch

    L = len(tensors)
    _, H, Q, K = tensors[0].shape
    dtype = _attn_dtype(L, H, Q, K)
    np_dtype = np.float16 if dtype == torch.float16 else np.float32
    if causal and L * H * Q * K * 4 > PACK_CAUSAL_ABOVE_BYTES:
        visible = CausalArray.visible(Q, K)
        packed = np.empty((L, H, int(visible.sum())), dtype=np_dtype)
        for i, a in enumerate(tensors):
            a = a[0]
            vis = visible.to(a.device)
            if bool(a[:, ~vis].any()):     # weight on the future (should not happen): keep it all
                break
            packed[i] = a[:, vis].to(dtype).cpu().numpy()
        else:
            return CausalArray(packed, Q, K)
        del packed
    out = np.empty((L, H, Q, K), dtype=np_dtype)
    for i, a in enumerate(tensors):
        out[i] = a[0].to(dtype).cpu().numpy()
    return out


def _store_device(tensors, causal: bool = False) -> DeviceArray:
    import torch

    return DeviceArray(torch.stack([a[0] for a in tensors]))


def _hidden(states, resident: bool):
    import torch

    t = torch.stack([h[0] for h in states])
    if resident:
        return DeviceArray(t)
    return np.ascontiguousarray(t.float().cpu().numpy())


def attention_bytes(layers: int, heads: int, query: int, key: int, causal: bool = False) -> int:
    """Host bytes the lab stores for one stack of that shape (float16 above the threshold;
    a causal stack above its threshold: the lower triangle plus two int64 row indexes)."""
    n = layers * heads * query * key
    item = 2 if n * 4 > FLOAT16_ABOVE_BYTES else 4
    if causal and n * 4 > PACK_CAUSAL_ABOVE_BYTES:
        tri = sum(min(key, key - query + i + 1) for i in range(query) if key - query + i + 1 > 0)
        return layers * heads * tri * item + 2 * 8 * query
    return n * item
