"""What a conversion writes: the precisions, the report's rows, and the output folder.

The folder is checked before any work (a file, a folder holding files, one that cannot be
created) and the results are published into it whole (``lab.core.atomic``): the output
folder holds complete files or nothing.
"""
from __future__ import annotations

import errno
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lab.core import atomic
from lab.core.errors import InputError, LabError
from lab.core.units import format_bytes

PRECISIONS = ("fp32", "fp16", "int8", "int4")
DEFAULT_PRECISIONS = ("fp32", "fp16", "int8")

FILE_NAME = "model-{precision}.onnx"
REPORT_NAME = "report.json"
_OUR_FILES = re.compile(r"^(model-(fp32|fp16|int8|int4)\.onnx(\.data)?|report\.json)$")


@dataclass
class PrecisionRow:
    precision: str
    file: str = ""
    file_bytes: Optional[int] = None          # model file + its external data, on disk
    param_bytes: Optional[int] = None         # bytes of all initializers (weights, scales, ...)
    bytes_by_dtype: dict = field(default_factory=dict)   # initializer bytes per element type
    fp32_tensors: list = field(default_factory=list)     # the largest tensors that stay fp32
    runtime_bytes: Optional[int] = None       # resident memory added by session + one run
    latency_ms_median: Optional[float] = None
    latency_ms_p95: Optional[float] = None
    max_abs_logit_diff: Optional[float] = None
    mean_abs_logit_diff: Optional[float] = None
    top1_agreement: Optional[float] = None    # fraction of positions with the same argmax
    kl: Optional[float] = None                # mean KL(torch || onnx) of next-token dists, nats
    perplexity: Optional[float] = None
    perplexity_change: Optional[float] = None  # onnx - torch
    nan_count: Optional[int] = None
    inf_count: Optional[int] = None
    size_ratio: Optional[float] = None        # file_bytes / fp32 file_bytes
    latency_ratio: Optional[float] = None     # median latency / fp32 median latency
    notes: list = field(default_factory=list)
    error: Optional[str] = None               # set when this precision could not be made


@dataclass
class ConversionReport:
    model: str
    kind: str
    out: str
    graph: str                                # what the graph takes and returns
    opset: int
    provider: str
    threads: int
    eval_text: str
    eval_tokens: int                          # tokens of the (encoder) input
    perplexity_torch: Optional[float]
    rows: list
    timings_s: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    per_channel: bool = False

    def row(self, precision: str) -> Optional[PrecisionRow]:
        return next((r for r in self.rows if r.precision == precision), None)

    def to_json(self) -> dict:
        d = asdict(self)
        return _finite(d)


def _finite(obj):
    """JSON has no NaN/inf: write them as null (the counts say what happened)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


# --- the output folder -------------------------------------------------------------------

def parse_precisions(spec) -> tuple[str, ...]:
    """``"fp32,fp16,int8"`` or a list -> a tuple in the canonical order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(p).strip().lower() for p in items if str(p).strip()]
    bad = [p for p in names if p not in PRECISIONS]
    if bad:
        raise InputError(f"Unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}.")
    if not names:
        raise InputError(f"Choose at least one precision ({', '.join(PRECISIONS)}).")
    return tuple(p for p in PRECISIONS if p in names)


class FolderNotEmpty(InputError):
    """The output folder holds files: ``holds`` says so without the CLI's flag (a dialog asks)."""

    def __init__(self, out: Path, entries: list[str]):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        self.holds = f"{out} already holds {len(entries)} file{'s' if len(entries) != 1 else ''} ({shown})."
        super().__init__(self.holds[:-1] + "; choose an empty folder, or replace them with force (--force).")


def check_output_folder(out, force: bool = False) -> Path:
    """Refuse a folder that is a file, holds files (unless force) or cannot be created."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder: choose a folder for the ONNX files.")
    if out.is_dir():
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as err:
            raise InputError(f"Cannot read the folder {out}: {err.strerror or err}.") from None
        if entries and not force:
            raise FolderNotEmpty(out, entries)
    parent = out.parent
    for p in [parent, *parent.parents]:
        if p.exists():
            if not p.is_dir():
                raise InputError(f"Cannot create {out}: {p} is a file, not a folder.")
            break
    return out


def _make_temp_folder(out: Path) -> Path:
    try:
        return atomic.temp_folder(out)
    except PermissionError:
        raise InputError(f"Cannot write to {out.parent}: permission denied; choose another output folder.") from None
    except OSError as err:
        raise _os_error(err, out) from None


def _os_error(err: OSError, out: Path) -> LabError:
    if err.errno == errno.ENOSPC:
        return InputError(f"The disk holding {out} is full; free some space or choose another output folder.")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(f"Cannot write to {out}: {err.strerror}; choose another output folder.")
    return InputError(f"Cannot write to {out}: {err.strerror or err}.")


def _check_free_space(out: Path, need: float) -> None:
    try:
        free = shutil.disk_usage(out.parent if out.parent.exists() else _existing_parent(out)).free
    except OSError:
        return
    if free < need:
        raise InputError(
            f"Not enough free space for the ONNX files in {out.parent}: they need about "
            f"{format_bytes(need, 'MB')} and the disk has {format_bytes(free, 'MB')} free.")


def _existing_parent(p: Path) -> Path:
    for q in p.parents:
        if q.exists():
            return q
    return Path(".")


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished files into ``out``: a rename of the folder, or file by file (the
    report last; earlier results of ours that this run does not replace are removed)."""
    if not force and out.is_dir() and any(out.iterdir()):   # a file appeared while we worked
        raise InputError(f"{out} filled with other files during the conversion; nothing was replaced.")
    atomic.publish_folder(tmp, out, merge=True, stale=_OUR_FILES.match, last=REPORT_NAME)
