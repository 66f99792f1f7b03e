"""Numbers as people type and read them: counts, byte sizes and FLOPs, parsed and formatted once.

Parsing accepts what the lab's inputs have always accepted: ``1e9``, ``175e9``, ``1.3B``,
``70M``, ``70,000`` (thousands separators ``,`` and ``_``), and for byte sizes a unit:
``16 GB`` (decimal, as memory is sold) or ``20GiB`` (binary). Formatting uses decimal
units with three significant digits everywhere ("4 GB", "16.8 GB", "124M").
"""
from __future__ import annotations

import math
import re
from typing import Optional

SECONDS_PER_DAY = 86_400
#: One petaFLOP/s-day in FLOPs: 1e15 FLOP/s x 86,400 s = 8.64e19.
PF_DAY = 1e15 * SECONDS_PER_DAY

#: Count suffixes (case-insensitive): thousand, million, billion (B or G), trillion.
COUNT_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
#: Byte units (case-insensitive): decimal KB..TB and binary KiB..TiB.
BYTE_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
              "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_NON_FINITE = ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")


def parse_number(text, *, bytes_units: bool = False) -> float:
    """A positive finite number from ``text``; raises ValueError with the reason.

    The reasons read as the end of a sentence: "missing value", "not a number ('x')",
    "not a finite number ('inf')", "zero", "negative (-5)". With ``bytes_units`` a byte
    unit is accepted too ("16 GB", "20GiB", "512 B"); a bare suffix still means a count
    (``80G`` is 80e9 bytes).
    """
    cell = str(text).strip()
    if cell == "":
        raise ValueError("missing value")
    m = _NUMBER.match(cell.replace(",", "").replace("_", ""))
    scale = None
    if m:
        unit = m.group(2).lower()
        if not unit:
            scale = 1.0
        elif bytes_units and unit in BYTE_UNITS:
            scale = float(BYTE_UNITS[unit])
        elif unit in COUNT_SUFFIX:
            scale = COUNT_SUFFIX[unit]
    if scale is None:
        if cell.lower() in _NON_FINITE:
            raise ValueError(f"not a finite number ({cell!r})")
        raise ValueError(f"not a number ({cell!r})")
    v = float(m.group(1)) * scale
    if not math.isfinite(v):
        raise ValueError(f"not a finite number ({cell!r})")
    if v == 0:
        raise ValueError("zero")
    if v < 0:
        raise ValueError(f"negative ({cell})")
    return v


def number_or_none(text, *, bytes_units: bool = False) -> Optional[float]:
    """``parse_number`` for a text field: None where it would raise."""
    try:
        return parse_number(text, bytes_units=bytes_units)
    except ValueError:
        return None


def _sig3(v: float) -> str:
    """Three significant digits, with thousands separators above 999 (never an exponent)."""
    return f"{v:,.0f}" if abs(v) >= 999.5 else f"{v:.3g}"


def format_bytes(b: Optional[float], unit: Optional[str] = None) -> str:
    """``4e9`` -> "4 GB", ``16.8e9`` -> "16.8 GB", ``512`` -> "512 B"; None -> "n/a".

    Decimal units (as memory and disks are sold). ``unit`` ("GB", ...) fixes the unit, so
    numbers in one sentence compare at a glance.
    """
    if b is None:
        return "n/a"
    b = float(b)
    if unit is not None:
        return f"{_sig3(b / BYTE_UNITS[unit.lower()])} {unit}"
    for name, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= scale * 0.9995:
            return f"{_sig3(b / scale)} {name}"
    return f"{b:,.0f} B"


def format_count(n: Optional[float]) -> str:
    """``124_439_808`` -> "124M", ``1.3e9`` -> "1.3B", ``512`` -> "512"; None -> "n/a"."""
    if n is None:
        return "n/a"
    n = float(n)
    for name, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale * 0.9995:
            return f"{_sig3(n / scale)}{name}"
    return f"{n:.3g}" if n != int(n) else str(int(n))


def format_number(v: Optional[float], *, sci_from: float = 1e4, sci_below: float = 1e-2) -> str:
    """Compact text for a quantity spanning decades: ``3.14e23`` -> "3.14e23", ``406.4`` -> "406.4".

    Scientific (mantissa to 3 decimals, no "+" or leading zeros in the exponent) from
    ``sci_from`` up and below ``sci_below``; otherwise 4 significant digits, with thousands
    separators above 999. None, NaN and inf -> "n/a".
    """
    if v is None or not math.isfinite(float(v)):
        return "n/a"
    v = float(v)
    if v != 0 and (abs(v) >= sci_from or abs(v) < sci_below):
        m, e = f"{v:.3e}".split("e")
        return f"{m.rstrip('0').rstrip('.')}e{int(e)}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def format_flops(flops: float) -> str:
    """``3.15e23`` -> "3.15e23 FLOPs = 3,646 PF-days" (the arithmetic texts' own style)."""
    return f"{format_number(flops, sci_from=1e6, sci_below=1e-3)} FLOPs = " \
           f"{format_number(flops / PF_DAY, sci_from=1e6, sci_below=1e-3)} PF-days"
