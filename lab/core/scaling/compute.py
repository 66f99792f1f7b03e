"""Training compute and hardware: 6ND, PF-days, GPU peaks and GPU-days, and argument checks.

Shapes: functions that take ``N`` / ``D`` / ``C`` accept scalars or numpy arrays and
broadcast. Units are in the names: ``*_flops`` are FLOPs, ``pf_days`` are
petaFLOP/s-days, ``params`` are parameters, ``tokens`` are training tokens.
"""
from __future__ import annotations

import math

import numpy as np

from lab.core.errors import InputError
from lab.core.units import PF_DAY, SECONDS_PER_DAY, format_number

FLOPS_PER_PF_DAY = PF_DAY  # 8.64e19 FLOPs
PF_DAY_SOURCE = "1 petaFLOP/s-day = 1e15 FLOP/s x 86,400 s = 8.64e19 FLOPs (Brown et al. 2020, GPT-3, App. D)"
TRAINING_FLOPS_SOURCE = "C ~= 6 N D (Kaplan et al. 2020, arXiv 2001.08361, Sec. 2.1)"

# Dense bf16/fp16 tensor-core peaks in FLOP/s (vendor data sheets, no sparsity).
GPU_PEAK_FLOPS = {
    "V100": 125e12,
    "A100": 312e12,
    "H100": 989e12,
    "H200": 989e12,
}
GPU_SOURCE = ("Dense bf16/fp16 tensor peaks: V100 125, A100 312, H100 SXM 989, H200 989 TFLOP/s "
              "(NVIDIA data sheets); real runs reach 30-50% of peak (MFU)")
DEFAULT_MFU = 0.40


def flops_to_pf_days(flops):
    return np.asarray(flops, dtype=float) / FLOPS_PER_PF_DAY if _is_array(flops) else flops / FLOPS_PER_PF_DAY


def pf_days_to_flops(pf_days):
    return np.asarray(pf_days, dtype=float) * FLOPS_PER_PF_DAY if _is_array(pf_days) else pf_days * FLOPS_PER_PF_DAY


def training_flops(params, tokens):
    """Training compute C = 6 N D in FLOPs (forward 2ND + backward 4ND)."""
    return 6.0 * _f(params) * _f(tokens)


def gpu_peak_flops(gpu: str) -> float:
    try:
        return GPU_PEAK_FLOPS[_gpu_key(gpu)]
    except KeyError:
        raise InputError(f"Unknown GPU {gpu!r}; choose one of {', '.join(GPU_PEAK_FLOPS)}.") from None


def gpu_flops(gpu: str, count: float, days: float, mfu: float = DEFAULT_MFU) -> float:
    """FLOPs delivered by ``count`` GPUs for ``days`` days at utilisation ``mfu``."""
    _check_mfu(mfu)
    if count <= 0 or days <= 0:
        raise InputError("GPU count and days must be positive.")
    return float(count) * float(days) * SECONDS_PER_DAY * gpu_peak_flops(gpu) * float(mfu)


def gpu_days(flops: float, gpu: str, mfu: float = DEFAULT_MFU) -> float:
    """GPU-days needed for ``flops`` FLOPs at utilisation ``mfu`` (divide by GPU count for days)."""
    _check_mfu(mfu)
    return float(flops) / (gpu_peak_flops(gpu) * float(mfu) * SECONDS_PER_DAY)


def _check_mfu(mfu: float) -> None:
    if not (0 < mfu <= 1):
        raise InputError(f"Utilisation (MFU) must be in (0, 1], got {mfu}.")


def _gpu_key(gpu: str) -> str:
    g = gpu.strip().upper()
    return "H100" if g.startswith("H100") else g


# ---------------------------------------------------------------- argument checks


def _is_array(v) -> bool:
    return isinstance(v, (np.ndarray, list, tuple))


def _f(v):
    return np.asarray(v, dtype=float) if _is_array(v) else float(v)


def _pos(v, what: str):
    a = _f(v)
    if _is_array(a):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise InputError(f"{what.capitalize()} must be positive finite numbers.")
        return a
    if not math.isfinite(a) or a <= 0:
        raise InputError(f"{what.capitalize()} must be a positive number, got {v!r}.")
    return a


def _scalar(v, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{what.capitalize()} must be a number, got {v!r}.") from None
    return float(_pos(f, what))


def _num(v: float) -> str:
    """A number in the arithmetic text: 3.14e23, 1,234, 406.4 (see ``units.format_number``)."""
    return format_number(v, sci_from=1e6, sci_below=1e-3)
