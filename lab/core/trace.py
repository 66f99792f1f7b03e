"""One captured forward pass, its attention aggregates, and the logit lens.

``capture(lm, text, target=None)`` runs the model once with eager attention and returns a
Trace: token ids and pieces with their character offsets, attentions per stack
(``self`` for decoder-only and encoder-only; ``encoder``, ``decoder``, ``cross`` for
encoder-decoder; each ``attn[layer, head, query, key]``), hidden states per layer
(``hidden[stack][layer, position, dim]``, index 0 is the embedding output) and logits.

Where the tensors live. On the CPU they are numpy arrays (float32; float16 above
``FLOAT16_ABOVE_BYTES``). Above that size a causal stack (decoder self-attention) keeps
only its lower triangle, as a ``CausalArray`` that reads like the full array: the future
holds exact zeros, so nothing is lost and 2,048 tokens x 12 layers x 12 heads take 604 MB
instead of 1,208 MB. On a GPU
the full tensors stay on the device (copying all attentions of a 1B model at 2,048 tokens
to the host takes seconds, computing them takes milliseconds): ``trace.attentions[stack]``
is then a ``DeviceArray`` that looks like a read-only numpy array, transfers only what is
indexed (``attn[layer, head]`` moves one head) and materialises the whole array only when
something asks for all of it. Thumbnails (block maxima) and per-head entropies are
reduced where the tensors are and arrive on the host with the trace. ``capture(...,
resident=True)`` forces that mode on the CPU too, so both paths are tested on any machine.

Aggregates (Abnar & Zuidema 2020 for rollout): ``mean_over_heads``, ``max_over_heads``,
``rollout``, ``head_entropy``, ``hide_first_token``. The logit lens (nostalgebraist 2020):
``logit_lens(lm, trace, position)`` reads every layer's hidden state through the model's
own final norm and output head.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors

# Stored attentions above this many bytes at float32 are kept as float16 instead.
FLOAT16_ABOVE_BYTES = 256 * 2**20
# ... and causal stacks above this many bytes keep only their lower triangle.
PACK_CAUSAL_ABOVE_BYTES = FLOAT16_ABOVE_BYTES
# Thumbnail side (pixels) of each head in the model view; reduced where the tensors are.
THUMB_SIZE = 48

STACK_LABELS = {
    "self": "self-attention",
    "encoder": "encoder self-attention",
    "decoder": "decoder self-attention",
    "cross": "cross-attention (decoder → encoder)",
}


# --- tensors kept where they were computed ---------------------------------------------

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


# --- the trace ----------------------------------------------------------------------------

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


# --- aggregates (numpy on the host, torch where the tensors live) --------------------------

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
    import torch.nn.functional as F   # torch's pooling is several times faster than numpy's reshape-max

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


# --- capture --------------------------------------------------------------------------------

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


# --- the logit lens ------------------------------------------------------------------------

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


def attention_bytes(layers: int, heads: int, query: int, key: int, causal: bool = False) -> int:
    """Host bytes the lab stores for one stack of that shape (float16 above the threshold;
    a causal stack above its threshold: the lower triangle plus two int64 row indexes)."""
    n = layers * heads * query * key
    item = 2 if n * 4 > FLOAT16_ABOVE_BYTES else 4
    if causal and n * 4 > PACK_CAUSAL_ABOVE_BYTES:
        tri = sum(min(key, key - query + i + 1) for i in range(query) if key - query + i + 1 > 0)
        return layers * heads * tri * item + 2 * 8 * query
    return n * item


# --- labels and files -------------------------------------------------------------------------

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


def npz_arrays(tr: Trace) -> dict[str, np.ndarray]:
    """What ``tvlab attention --npz`` and the panel's export write: ``tokens``
    (``target_tokens`` for encoder-decoder) and each stack as float32 [layer, head, query, key]."""
    arrays: dict[str, np.ndarray] = {"tokens": np.asarray(tr.tokens, dtype=str)}
    if tr.kind == KIND_SEQ2SEQ:
        arrays["target_tokens"] = np.asarray(tr.target_tokens, dtype=str)
    for stack in tr.stacks:
        arrays[stack] = np.asarray(tr.attentions[stack], dtype=np.float32)
    return arrays


def save_npz(tr: Trace, path) -> str:
    """Write the raw tensors atomically (temporary name in the same folder, then rename)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path).expanduser()
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"Cannot write {path}: the folder {folder} does not exist.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise InputError(f"Cannot write {path}: {err.strerror or err}.") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **npz_arrays(tr))
        os.replace(tmp, path)
    except OSError as err:
        raise InputError(f"Cannot write {path}: {err.strerror or err}.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(path)


__all__ = ["Trace", "DeviceArray", "capture", "encode", "logit_lens", "LensResult", "LensLayer",
           "mean_over_heads", "max_over_heads", "rollout", "head_entropy", "thumbnails",
           "hide_first_token", "kv_groups", "attention_bytes", "STACK_LABELS", "display_tokens",
           "npz_arrays", "save_npz",
           "KIND_DECODER", "KIND_ENCODER", "KIND_SEQ2SEQ"]
