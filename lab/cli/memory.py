"""`tvlab memory --params 1e9`: weights per dtype, inference and training memory broken down."""
from __future__ import annotations

from lab.cli import one_line_errors, print_json
from lab.core import memory as mem
from lab.core.errors import InputError
from lab.core.units import parse_number

NAME = "memory"
HELP = "memory calculator: weights per dtype, inference, training (weights, gradients, Adam, activations)"


def add_arguments(parser) -> None:
    one_line_errors(parser)
    parser.add_argument("--params", required=True, help="parameter count (e.g. 1e9 or 1B)")
    parser.add_argument("--precision", default="mixed", help="training precision: mixed (default) or fp32")
    parser.add_argument("--batch", default=str(mem.TYPICAL_BATCH),
                        help=f"batch size for activations (default {mem.TYPICAL_BATCH})")
    parser.add_argument("--seq", default=str(mem.TYPICAL_SEQ),
                        help=f"sequence length for activations (default {mem.TYPICAL_SEQ})")
    parser.add_argument("--layers", default=None,
                        help="layers (with --d-model and --heads; default: the published shape nearest to --params)")
    parser.add_argument("--d-model", "--hidden", dest="hidden", default=None, help="hidden size d_model")
    parser.add_argument("--heads", default=None, help="attention heads")
    parser.add_argument("--no-activations", action="store_true",
                        help="leave activations out (the training verdict is then 'unknown')")
    parser.add_argument("--fp32-gradients", action="store_true", help="mixed precision with fp32 gradients (18 B/param)")
    parser.add_argument("--inference-dtype", default="fp16", help="dtype for the inference fit check (default fp16)")
    parser.add_argument("--gpu-memory", default=None, help="device memory (e.g. 80e9 or 80 GB) for 'does it fit?'")
    parser.add_argument("--json", action="store_true")


def _num(v, what, integer=False):
    if v is None:
        return None
    try:
        x = parse_number(v, bytes_units=what == "gpu-memory")
    except ValueError as why:
        raise InputError(f"--{what}: {why}.") from None
    if integer:
        if x != int(x):
            raise InputError(f"--{what} must be a whole number, got {v}.")
        return int(x)
    return x


def run(args) -> int:
    out = mem.estimate(
        _num(args.params, "params"), precision=args.precision, batch=_num(args.batch, "batch", True),
        seq=_num(args.seq, "seq", True), layers=_num(args.layers, "layers", True),
        hidden=_num(args.hidden, "hidden", True), heads=_num(args.heads, "heads", True),
        fp32_gradients=args.fp32_gradients, inference_dtype=args.inference_dtype,
        device_bytes=_num(args.gpu_memory, "gpu-memory"), activations=not args.no_activations)
    if args.json:
        print_json(out)
        return 0
    f = mem.format_bytes
    t = out["training"]
    print(f"Parameters: {out['params']:.4g}")
    print("Weights:   " + "   ".join(f"{d} {f(b)}" for d, b in out["weights_bytes"].items()))
    print("Inference (weights x 1.2):   " + "   ".join(f"{d} {f(b)}" for d, b in out["inference_bytes"].items()))
    print(f"Training ({t['precision']}, Adam):")
    print(f"  weights        {f(t['weights_bytes'])}")
    print(f"  gradients      {f(t['gradients_bytes'])}")
    a = t["adam_bytes"]
    print(f"  Adam           {f(a['total'])}  (master {f(a['master'])}, momentum {f(a['momentum'])}, "
          f"variance {f(a['variance'])})")
    print(f"  model states   {f(t['model_states_bytes'])}  ({t['bytes_per_param']:g} bytes/param)")
    shape = out["activations"]["shape"]
    print(f"  activations    {f(t['activations_bytes'])}" + (
        f"  ({shape['basis']}, batch {shape['batch']} x {shape['seq']} tokens)" if shape else
        "  (not estimated)"))
    print(f"  total          {f(t['total_bytes'])}")
    for n in t["notes"]:
        print(f"  note: {n}")
    print("Course example:")
    for line in out["course_example"]["explanation"]:
        print(f"  {line}")
    if "fits" in out:
        for k, v in out["fits"].items():
            print(f"Fits on the device ({k}): {v['verdict']}")
        print(f"  {v['note']}")
    return 0
