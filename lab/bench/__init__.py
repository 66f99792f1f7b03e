"""Benchmarks for `tvlab bench`: figures, not tests.

Each suite module here defines ``NAME`` and ``run(device: str, quick: bool) -> list[Figure]``;
every figure is the lab's time next to a baseline measured in the same run (usually
plain transformers), so machine noise cancels in the ratio. Two modules are not suites:
``tiny_models`` builds the random-init models the benchmarks and the tests share, and
``split`` is a pass/fail proof on two GPUs (``tvlab bench split``). Results go to
``bench/results/``.
"""
from __future__ import annotations

import importlib
import pkgutil
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional


@dataclass
class Figure:
    name: str                       # what was measured, e.g. "capture 512 tokens"
    value: float                    # the lab's figure
    unit: str                       # "ms", "MB", ...
    baseline: Optional[float] = None  # the same thing done by the reference (same unit)
    baseline_name: str = ""         # what the baseline is
    target: str = ""                # the target, as text ("ratio <= 1.3")
    ok: Optional[bool] = None       # whether the target is met (None: no target)

    @property
    def ratio(self) -> Optional[float]:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        return d


def time_ms(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def suites() -> dict[str, object]:
    out = {}
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        if hasattr(mod, "run") and hasattr(mod, "NAME"):
            out[mod.NAME] = mod
    return out


def hardware(device: str) -> dict:
    import os

    import torch
    import transformers

    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "device": device}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
