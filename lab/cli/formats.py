"""`tvlab formats --value 3.14159`: one number stored in fp32, fp16, bf16, int8 and int4."""
from __future__ import annotations

import math

from lab.cli import one_line_errors, print_json
from lab.core.precision import formats

NAME = "formats"
HELP = "a number in fp32, fp16, bf16, int8 and int4: bits, stored value, error, overflow"


def add_arguments(parser) -> None:
    one_line_errors(parser)
    parser.add_argument("--value", default="pi", help="the number to store (default π; e.g. 65504, 70000, 1e-8)")
    parser.add_argument("--range", dest="range_", default=str(formats.DEFAULT_RANGE),
                        help="max |x| that scaled int8 / int4 cover: scale = range/127 or range/7 "
                             f"(default {formats.DEFAULT_RANGE:g})")
    parser.add_argument("--table", action="store_true", help="also print each format's range and precision")
    parser.add_argument("--json", action="store_true",
                        help="per format: stored value (null for inf), bits, absolute error, overflow flag")


def _value(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.10g}"


def run(args) -> int:
    value = formats.parse_value(args.value)
    range_ = formats.parse_value(args.range_)
    stored = formats.store_all(value, range_=range_)
    if args.json:
        out = {"value": value, "range": range_, "formats": {k: s.to_json() for k, s in stored.items()}}
        if args.table:
            out["table"] = [dict(vars(r)) for r in formats.format_table()]
        print_json(out)
        return 0
    print(f"{_value(value)} stored in each format (scaled ints cover ±{range_:g}):")
    width = max(len(s.bits) for s in stored.values())
    print(f"  {'format':<12} {'bits (sign exponent mantissa)':<{width}}  {'stored':>16}  {'abs error':>10}  "
          f"{'rel error':>10}  note")
    for fmt, s in stored.items():
        notes = []
        if s.overflow:
            notes.append("overflow → inf" if fmt in formats.FLOATS else "clamped (out of range)")
        if s.underflow:
            notes.append("underflow → 0")
        if s.subnormal:
            notes.append("subnormal")
        if s.scale is not None:
            notes.append(f"code {s.code} × scale {s.scale:.4g}")
        err = "–" if s.abs_error is None else f"{s.abs_error:.3g}"
        rel = "–" if s.rel_error is None else f"{s.rel_error:.3g}"
        print(f"  {fmt:<12} {s.bits:<{width}}  {_value(s.stored):>16}  {err:>10}  {rel:>10}  {', '.join(notes)}")
    if args.table:
        print(f"\n{'format':<7} {'bytes':>5}  {'range':<31} {'smallest normal':>15}  {'smallest subnormal':>18}  "
              f"{'digits':>6}  course (rounded)")
        for r in formats.format_table():
            normal = "–" if r.smallest_normal is None else f"{r.smallest_normal:.4g}"
            sub = "–" if r.smallest_subnormal is None else f"{r.smallest_subnormal:.4g}"
            span = f"{r.min:.8g} … {r.max:.8g}"
            print(f"{r.fmt:<7} {r.bytes:>5g}  {span:<31} {normal:>15}  {sub:>18}  "
                  f"{r.decimal_digits:>6}  {r.course}")
    return 0
