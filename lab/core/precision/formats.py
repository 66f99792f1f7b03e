"""One number stored in fp32, fp16, bf16, int8 and int4: its bits, the value kept, the error.

The floating formats are rounded here with numpy, bit for bit as torch rounds them
(tests/core/test_formats.py checks every result against torch, the oracle): the number
view updates on the GUI thread as the user types, where torch may not run, and without
waiting behind a conversion on the model worker. Like torch, fp16 and bf16 are rounded
from the fp32 value (round to nearest, ties to even), not straight from the decimal.

int8 and int4 are shown two ways: plain integer rounding (π → 3, the course's picture)
and symmetric scaling with a chosen range, as quantizers do: scale = range / 127 (int8)
or range / 7 (int4), code = round(x / scale) clamped to ±127 (±7), value = code × scale.

The table of ranges (``format_table``) uses ``torch.finfo``; it runs on the worker.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.units import parse_number

FLOATS = ("fp32", "fp16", "bf16")
INTS = ("int8", "int4")
#: Every way of storing a number that ``store_all`` shows, in order.
FORMATS = ("fp32", "fp16", "bf16", "int8", "int4", "int8_scaled", "int4_scaled")
#: (exponent bits, mantissa bits) of the floating formats.
LAYOUT = {"fp32": (8, 23), "fp16": (5, 10), "bf16": (8, 7)}
INT_BITS = {"int8": 8, "int4": 4}
#: Largest code of symmetric quantization (the most negative code is not used).
SYMMETRIC_MAX = {"int8": 127, "int4": 7}
DEFAULT_VALUE = math.pi
PRESETS = (65504.0, 70000.0, 1e-8, 0.1)
#: The range a scaled int format covers unless one is chosen: π in a tensor whose largest
#: magnitude is 4.
DEFAULT_RANGE = 4.0


@dataclass(frozen=True)
class Stored:
    """``value`` as kept by format ``fmt``."""

    fmt: str
    value: float                 # the number asked for
    stored: float                # the number the format keeps (inf on overflow)
    sign: str                    # bits, most significant first
    exponent: str                # "" for the integer formats
    mantissa: str                # the integer formats: the bits after the sign bit
    abs_error: Optional[float]   # None when the stored value is infinite
    rel_error: Optional[float]   # None for 0 (and for an infinite stored value)
    overflow: bool               # became inf (floats) or was clamped (ints)
    underflow: bool              # a non-zero number became 0
    subnormal: bool = False      # kept with less precision, below the smallest normal
    scale: Optional[float] = None   # the scaled int formats: range / 127 or range / 7
    code: Optional[int] = None      # the integer formats: the integer stored

    @property
    def bits(self) -> str:
        """The bits as one string, fields separated by spaces."""
        return " ".join(p for p in (self.sign, self.exponent, self.mantissa) if p)

    def to_json(self) -> dict:
        return {"stored": self.stored if math.isfinite(self.stored) else None, "bits": self.bits,
                "error": self.abs_error, "overflow": self.overflow}

    def as_dict(self) -> dict:
        return dict(asdict(self), bits=self.bits)


def parse_value(text) -> float:
    """A number typed by a user ("3.14", "-65,504", "1e-8", "0", "pi"): InputError otherwise.

    The magnitude goes through the lab's one number parser (``lab.core.units``); the sign,
    zero and π are handled here."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        x = float(text)
    else:
        cell = str(text).strip().replace("\u2212", "-")
        sign = -1.0 if cell.startswith("-") else 1.0
        body = cell.lstrip("+-").strip()
        if body.lower() in ("pi", "\u03c0"):
            return sign * math.pi
        try:
            x = 0.0 if _is_zero(body) else sign * parse_number(body)
        except ValueError:
            raise InputError(f"{cell or 'nothing'!r} is not a number (try 3.14159, 65504, 1e-8).") from None
    if not math.isfinite(x):
        raise InputError(f"{x} is not a finite number: type a number such as 70000 or 1e39.")
    return x


def _is_zero(body: str) -> bool:
    try:
        return float(body.replace(",", "").replace("_", "")) == 0
    except ValueError:
        return False


def _bits16(u: int, width: int) -> str:
    return format(u, f"0{width}b")


def _fp32(x: float) -> np.float32:
    with np.errstate(over="ignore"):
        return np.float32(x)


def _bf16_bits(x32: np.float32) -> int:
    """bf16 = the top 16 bits of fp32, rounded to nearest, ties to even (torch's rounding)."""
    u = int(np.array(x32, dtype=np.float32).view(np.uint32))
    if math.isnan(float(x32)):
        return 0x7FC0
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF


def _float_bits(fmt: str, x: float) -> tuple[int, float]:
    """(bit pattern, stored value) of ``x`` in a floating format."""
    x32 = _fp32(x)
    if fmt == "fp32":
        return int(np.array(x32).view(np.uint32)), float(x32)
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            h = np.float16(x32)
        return int(np.array(h).view(np.uint16)), float(h)
    u = _bf16_bits(x32)
    return u, float(np.array(u << 16, dtype=np.uint32).view(np.float32))


def _errors(x: float, stored: float) -> tuple[Optional[float], Optional[float]]:
    if not math.isfinite(stored):
        return None, None
    err = abs(stored - x)
    return err, (err / abs(x) if x else None)


def store(value, fmt: str, *, range_: Optional[float] = None) -> Stored:
    """``value`` stored in ``fmt`` (one of FORMATS); ``range_`` is the max |x| the scaled
    int formats cover (default DEFAULT_RANGE)."""
    x = parse_value(value)
    if fmt in FLOATS:
        exp_bits, man_bits = LAYOUT[fmt]
        u, s = _float_bits(fmt, x)
        width = 1 + exp_bits + man_bits
        b = _bits16(u, width)
        exponent = b[1:1 + exp_bits]
        abs_err, rel_err = _errors(x, s)
        return Stored(fmt=fmt, value=x, stored=s, sign=b[0], exponent=exponent, mantissa=b[1 + exp_bits:],
                      abs_error=abs_err, rel_error=rel_err, overflow=math.isinf(s) and math.isfinite(x),
                      underflow=s == 0 and x != 0, subnormal=s != 0 and set(exponent) == {"0"})
    base = fmt.removesuffix("_scaled")
    if base not in INTS:
        raise InputError(f"Unknown number format {fmt!r}; choose from {', '.join(FORMATS)}.")
    n = INT_BITS[base]
    if fmt == base:        # plain integer rounding, saturating at the ends of the range
        lo, hi, scale = -(1 << (n - 1)), (1 << (n - 1)) - 1, None
        exact = float(np.rint(x))
    else:
        r = DEFAULT_RANGE if range_ is None else parse_value(range_)
        if not r > 0 or math.isinf(r):
            raise InputError(f"The range of a scaled format must be a positive number, got {r:g}.")
        hi = SYMMETRIC_MAX[base]
        lo, scale = -hi, r / hi
        exact = float(np.rint(x / scale))
    code = int(min(max(exact, lo), hi))
    s = float(code) if scale is None else code * scale
    b = _bits16(code & ((1 << n) - 1), n)
    abs_err, rel_err = _errors(x, s)
    return Stored(fmt=fmt, value=x, stored=s, sign=b[0], exponent="", mantissa=b[1:], abs_error=abs_err,
                  rel_error=rel_err, overflow=exact != code, underflow=code == 0 and x != 0,
                  scale=scale, code=code)


def store_all(value, *, range_: Optional[float] = None) -> dict[str, Stored]:
    """``value`` in every format of FORMATS."""
    x = parse_value(value)
    return {fmt: store(x, fmt, range_=range_) for fmt in FORMATS}


# --- the table ---------------------------------------------------------------------------

#: What the course says of each format, where it gives a figure (rounded).
COURSE = {
    "fp32": "range ±3×10^38, 4 bytes",
    "fp16": "range about ±65,504, 2 bytes",
    "bf16": "keeps the large range of FP32, lower precision",
    "int8": "range −128 to +127, loses a lot of precision",
    "int4": "",
}


@dataclass(frozen=True)
class FormatRow:
    fmt: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    bytes: float
    max: float                           # the largest finite value
    min: float                           # the most negative value
    smallest_normal: Optional[float]     # None for the integer formats
    smallest_subnormal: Optional[float]
    eps: float                           # the gap after 1.0 (1 for integers)
    decimal_digits: int                  # torch.finfo's resolution exponent
    course: str


def format_table() -> list[FormatRow]:
    """Each format's range and precision from ``torch.finfo`` / ``torch.iinfo`` (int4 by
    its definition: 4-bit two's complement). Runs torch: call it on the worker."""
    import torch

    rows = []
    for fmt, dt in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        fi = torch.finfo(dt)
        exp_bits, man_bits = LAYOUT[fmt]
        rows.append(FormatRow(fmt=fmt, bits=fi.bits, exponent_bits=exp_bits, mantissa_bits=man_bits,
                              bytes=fi.bits / 8, max=float(fi.max), min=float(fi.min),
                              smallest_normal=float(fi.smallest_normal),
                              smallest_subnormal=float(fi.smallest_normal) * 2.0 ** -man_bits,
                              eps=float(fi.eps), decimal_digits=int(round(-math.log10(fi.resolution))),
                              course=COURSE[fmt]))
    ii = torch.iinfo(torch.int8)
    rows.append(FormatRow(fmt="int8", bits=ii.bits, exponent_bits=0, mantissa_bits=ii.bits - 1, bytes=1.0,
                          max=float(ii.max), min=float(ii.min), smallest_normal=None, smallest_subnormal=None,
                          eps=1.0, decimal_digits=2, course=COURSE["int8"]))
    rows.append(FormatRow(fmt="int4", bits=4, exponent_bits=0, mantissa_bits=3, bytes=0.5, max=7.0, min=-8.0,
                          smallest_normal=None, smallest_subnormal=None, eps=1.0, decimal_digits=0,
                          course=COURSE["int4"]))
    return rows
