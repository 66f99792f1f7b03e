"""A trace's raw attentions as an NPZ file (``tvlab attention --npz`` and the panel's export)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.core import atomic
from lab.core.errors import InputError
from lab.core.models import KIND_SEQ2SEQ
from lab.core.trace.record import Trace


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
    """Write the raw tensors whole (``lab.core.atomic``); returns the path written."""
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"Cannot write {path}: the folder {folder} does not exist.")
    try:
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **npz_arrays(tr))
    except OSError as err:
        raise InputError(f"Cannot write {path}: {err.strerror or err}.") from None
    return str(path)
