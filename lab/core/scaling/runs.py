"""Training runs read from a CSV: good rows as arrays, bad rows listed with a reason."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.units import parse_number

_PARAM_COLS = ("params", "parameters", "n", "n_params", "num_params", "total_params")
_NONEMB_COLS = ("non_embedding_params", "nonembedding_params", "non_embedding_parameters")
_TOKEN_COLS = ("tokens", "d", "n_tokens", "num_tokens", "training_tokens")
_LOSS_COLS = ("loss", "val_loss", "eval_loss", "validation_loss", "final_loss")
_COMPUTE_COLS = ("compute", "flops", "c", "compute_flops", "training_flops")


@dataclass
class BadRow:
    line: int                  # 1-based line number in the file
    reason: str
    text: str

    def to_json(self) -> dict:
        return dict(line=self.line, reason=self.reason, text=self.text)


@dataclass
class Runs:
    """Good rows of a runs CSV as float arrays, plus the bad rows with reasons."""

    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    compute_flops: np.ndarray      # from the file where given, else 6ND
    lines: np.ndarray              # line number of each good row
    bad_rows: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)   # role -> column name used
    source: str = ""

    def __len__(self) -> int:
        return len(self.params)


def read_runs(path, param_column: Optional[str] = None) -> Runs:
    """Read a CSV of runs; bad rows are listed and skipped (never raised)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"No such file: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a folder, not a CSV file.") from None
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a UTF-8 text CSV file.") from None
    except OSError as err:
        raise InputError(f"Cannot read {p}: {err.strerror or err}") from None
    return parse_runs(text, source=str(p), param_column=param_column)


def parse_runs(text: str, source: str = "<text>", param_column: Optional[str] = None) -> Runs:
    """Parse runs CSV text: columns params/parameters, tokens, loss/val_loss, optional compute/flops.

    '#' lines are comments (the zoo's ``models/scaling_runs.csv``). With both ``params`` and
    ``non_embedding_params`` present, ``params`` (all parameters, as Chinchilla counts) is
    used unless ``param_column`` says otherwise.
    """
    text = text.lstrip("\ufeff")
    numbered = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
                if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise InputError(f"{source} holds no header and no rows.")
    rows = list(csv.reader([ln for _, ln in numbered]))
    header = [h.strip().lower() for h in rows[0]]

    def pick(names, role, required=True):
        for n in names:
            if n in header:
                return n
        if required:
            raise InputError(f"{source}: no {role} column (expected one of {', '.join(names[:3])}); "
                             f"header is {', '.join(header)}.")
        return None

    if param_column:
        if param_column.lower() not in header:
            raise InputError(f"{source}: no column {param_column!r}; header is {', '.join(header)}.")
        pcol = param_column.lower()
    else:
        pcol = pick(_PARAM_COLS, "parameters", required=False) or pick(_NONEMB_COLS, "parameters")
    tcol = pick(_TOKEN_COLS, "tokens")
    lcol = pick(_LOSS_COLS, "loss")
    ccol = pick(_COMPUTE_COLS, "compute", required=False)
    idx = {role: header.index(c) for role, c in
           (("params", pcol), ("tokens", tcol), ("loss", lcol), ("compute", ccol)) if c}

    good: dict = {k: [] for k in ("params", "tokens", "loss", "compute", "line")}
    bad: list[BadRow] = []
    for (line, raw), row in zip(numbered[1:], rows[1:]):
        vals, reasons = {}, []
        for role, j in idx.items():
            cell = row[j].strip() if j < len(row) else ""
            if role == "compute" and cell == "":
                vals[role] = math.nan       # optional
                continue
            try:
                vals[role] = parse_number(cell)
            except ValueError as why:
                reasons.append(f"{header[j]}: {why}")
        if reasons:
            bad.append(BadRow(line, "; ".join(reasons), raw.strip()))
            continue
        good["params"].append(vals["params"])
        good["tokens"].append(vals["tokens"])
        good["loss"].append(vals["loss"])
        good["compute"].append(vals.get("compute", math.nan))
        good["line"].append(line)
    N = np.array(good["params"], dtype=float)
    D = np.array(good["tokens"], dtype=float)
    C = np.array(good["compute"], dtype=float)
    C = np.where(np.isfinite(C), C, 6.0 * N * D)
    cols = {"params": pcol, "tokens": tcol, "loss": lcol}
    if ccol:
        cols["compute"] = ccol
    return Runs(params=N, tokens=D, loss=np.array(good["loss"], dtype=float), compute_flops=C,
                lines=np.array(good["line"], dtype=int), bad_rows=bad, columns=cols, source=source)
