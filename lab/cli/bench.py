"""tvlab bench: speed and memory figures as ratios to a baseline measured in the same run."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from lab.cli import print_json
from lab.core import atomic
from lab.core.errors import InputError

NAME = "bench"
HELP = "measure speed and memory against transformers (figures, not tests)"


def add_arguments(p):
    p.add_argument("suite", nargs="?", default="all",
                   help="which benchmark: decode, attention, convert, tokens, ui, zoo, ... or all; "
                        "split: the two-GPU split proof; soak: a workshop's day in the main window "
                        "(neither is part of all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (a smoke run)")
    p.add_argument("--save", metavar="DIR", help="also write the results as JSON into DIR (e.g. bench/results)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", metavar="FILE", help="split: also write its report to FILE")
    p.add_argument("--tokens", type=int, default=512, help="split: tokens to capture (default 512)")
    p.add_argument("--steps", type=int, default=500, help="soak: analyses to run (default 500)")


def run(args) -> int:
    from lab.bench import hardware, soak, split, suites

    if args.suite == split.NAME:
        return split.main(args.out, args.tokens)
    if args.suite == soak.NAME:
        if args.steps < 1:
            raise InputError("--steps must be at least 1.")
        return soak.main(args.steps, args.save, args.json)
    available = suites()
    if args.suite == "all":
        chosen = list(available)
    elif args.suite in available:
        chosen = [args.suite]
    else:
        raise InputError(f"Unknown benchmark {args.suite!r}; choose one of: all, {', '.join(available)}, {split.NAME}, {soak.NAME}.")
    device = args.device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but this machine has no CUDA GPU.")
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware(device), "quick": bool(args.quick), "suites": {}}
    for name in chosen:
        t = time.perf_counter()
        figures = available[name].run(device, args.quick)
        report["suites"][name] = {"seconds": round(time.perf_counter() - t, 2),
                                  "figures": [f.to_dict() for f in figures]}
        if not args.json:
            print(f"== {name} ({report['suites'][name]['seconds']} s)")
            for f in figures:
                line = f"  {f.name}: {f.value:.3f} {f.unit}"
                if f.baseline is not None:
                    line += f"  vs {f.baseline_name or 'baseline'} {f.baseline:.3f} {f.unit}  ratio {f.ratio:.3f}"
                if f.target:
                    line += f"  [target {f.target}: {'met' if f.ok else 'NOT met' if f.ok is False else 'n/a'}]"
                print(line)
    if args.save:
        folder = Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now().strftime("%Y-%m-%d")
        dev = "cuda" if device.startswith("cuda") else "cpu"
        path = folder / f"{stamp}-{dev}-{'-'.join(chosen) if len(chosen) < 3 else 'all'}.json"
        atomic.write_text(path, json.dumps(report, indent=2))
        if not args.json:
            print(f"saved {path}")
    if args.json:
        print_json(report)
    return 0
