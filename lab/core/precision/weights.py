"""One weight tensor of the loaded model: its histogram, and the error each format makes on it.

fp16 and bf16 are torch casts (what ``model.half()`` / ``model.to(torch.bfloat16)``
store); int8 and int4 are symmetric per-tensor quantization, as in the number view:
scale = max|w| / 127 (or / 7), code = round(w / scale), kept = code × scale. The
converter's int8 is per tensor too (per channel when asked); its int4 uses blocks of 32,
which keeps the error far below the per-tensor figure shown here.
Runs torch: call these on the model worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.precision.formats import SYMMETRIC_MAX

#: The formats a tensor is measured in, in order.
TENSOR_FORMATS = ("fp16", "bf16", "int8", "int4")
BINS = 121


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple
    numel: int
    dtype: str


@dataclass(frozen=True)
class TensorStats:
    """A tensor's values (as fp32) and how each format keeps them."""

    name: str
    shape: tuple
    numel: int
    dtype: str                    # as loaded
    min: float
    max: float
    absmax: float
    mean: float
    std: float
    counts: np.ndarray            # histogram counts, BINS bins
    edges: np.ndarray             # BINS + 1 bin edges
    scales: dict                  # "int8" / "int4": the per-tensor scale (levels at k × scale)
    errors: dict                  # format -> {"max", "mean", "relative", "zeroed", "overflow"}

    def grid(self, fmt: str) -> np.ndarray:
        """The values the int format can keep for this tensor: -max..max × scale."""
        m = SYMMETRIC_MAX[fmt]
        return np.arange(-m, m + 1, dtype=np.float64) * self.scales[fmt]


def weight_tensors(model) -> list[TensorInfo]:
    """Floating parameters with at least one dimension, each stored tensor once (tied
    weights are listed under their first name), in the model's order."""
    seen, out = set(), []
    for name, p in model.named_parameters():
        if not p.is_floating_point() or p.dim() == 0 or p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        out.append(TensorInfo(name=name, shape=tuple(p.shape), numel=p.numel(), dtype=str(p.dtype).removeprefix("torch.")))
    return out


def default_tensor(infos: list[TensorInfo]) -> Optional[str]:
    """The first 2-D weight that is not an embedding (an attention or MLP matrix), else the first."""
    for t in infos:
        low = t.name.lower()
        if len(t.shape) == 2 and "emb" not in low and "wte" not in low and "wpe" not in low and "shared" not in low:
            return t.name
    return infos[0].name if infos else None


def quantize_symmetric(w, fmt: str):
    """(kept values, scale) of symmetric per-tensor int8 / int4 quantization of ``w`` (fp32)."""
    import torch

    m = SYMMETRIC_MAX[fmt]
    absmax = float(w.abs().max()) if w.numel() else 0.0
    scale = absmax / m if absmax > 0 else 1.0
    return torch.clamp(torch.round(w / scale), -m, m) * scale, scale


def tensor_stats(model, name: str, bins: int = BINS) -> TensorStats:
    """The histogram of ``name``'s values and each format's error on it (max |Δ|, mean |Δ|,
    relative = mean |Δ| / mean |w|, how many non-zero values became 0 or inf)."""
    import torch

    params = dict(model.named_parameters())
    if name not in params:
        raise InputError(f"The model has no weight named {name!r}.")
    p = params[name]
    with torch.no_grad():
        w = p.detach().to("cpu", torch.float32).reshape(-1)
        lo, hi = float(w.min()), float(w.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        counts = torch.histc(w, bins=bins, min=lo, max=hi)
        mean_abs = float(w.abs().mean())
        errors, scales = {}, {}
        for fmt in TENSOR_FORMATS:
            if fmt in ("fp16", "bf16"):
                kept = w.to(torch.float16 if fmt == "fp16" else torch.bfloat16).float()
            else:
                kept, scales[fmt] = quantize_symmetric(w, fmt)
            finite = torch.isfinite(kept)
            diff = (kept - w).abs()[finite]
            errors[fmt] = {
                "max": float(diff.max()) if diff.numel() else float("inf"),
                "mean": float(diff.mean()) if diff.numel() else float("inf"),
                "relative": float(diff.mean()) / mean_abs if mean_abs and diff.numel() else 0.0,
                "zeroed": int(((kept == 0) & (w != 0)).sum()),
                "overflow": int((~finite).sum()),
            }
        return TensorStats(
            name=name, shape=tuple(p.shape), numel=p.numel(), dtype=str(p.dtype).removeprefix("torch."),
            min=float(w.min()), max=float(w.max()), absmax=float(w.abs().max()), mean=float(w.mean()),
            std=float(w.std()) if w.numel() > 1 else 0.0, counts=counts.numpy().astype(np.int64),
            edges=np.linspace(lo, hi, bins + 1), scales=scales, errors=errors)
