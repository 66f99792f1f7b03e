"""`tvlab convert --model M --out DIR`: ONNX at fp32 / fp16 / int8 (/ int4) plus the readout."""
from __future__ import annotations

import sys

from lab.cli import print_json

NAME = "convert"
HELP = "export a model to ONNX at several precisions and compare size, memory, speed and fidelity"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--out", required=True, help="output folder (must be empty or new, unless --force)")
    p.add_argument("--precisions", default="fp32,fp16,int8",
                   help="comma-separated: fp32, fp16, int8, int4 (default fp32,fp16,int8)")
    p.add_argument("--force", action="store_true", help="replace the lab's files in a folder that holds files")
    p.add_argument("--per-channel", action="store_true", help="int8 with one scale per output channel")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads for the latency (default: physical cores)")
    p.add_argument("--device", default="cpu", help="device to load the model on (the export uses an fp32 CPU copy)")
    p.add_argument("--text", default=None, help="evaluation text (default: a fixed Shakespeare passage)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _fmt(v, spec="{:.3g}"):
    return "-" if v is None else spec.format(v)


def run(args) -> int:
    from lab.core import models, precision
    from lab.core.errors import InputError
    from lab.core.jobs import Job

    precisions = precision.parse_precisions(args.precisions)   # bad input before loading
    precision.check_output_folder(args.out, args.force)
    if args.threads is not None and args.threads < 1:
        raise InputError("--threads must be 1 or more.")
    lm = models.load(args.model, args.device, "fp32")
    last = [""]

    def progress(fraction, stage):
        if not args.json and stage != last[0]:
            last[0] = stage
            print(f"[{fraction * 100:3.0f}%] {stage}", file=sys.stderr)

    report = precision.convert(lm, args.out, precisions, force=args.force, per_channel=args.per_channel,
                               threads=args.threads, eval_text=args.text or precision.EVAL_TEXT, job=Job(progress))
    data = report.to_json()
    if args.json:
        print_json(data)
        return 0
    print(f"{data['model']} ({data['kind']}) -> {data['out']}")
    print(f"graph: {data['graph']}; opset {data['opset']}")
    print(f"{data['provider']}, {data['threads']} threads; evaluation text: {data['eval_tokens']} tokens; "
          f"torch fp32 perplexity {_fmt(data['perplexity_torch'], '{:.3f}')}")
    head = f"{'precision':<9} {'file MB':>8} {'ratio':>6} {'runtime MB':>10} {'median ms':>9} {'p95 ms':>8} " \
           f"{'max|dlogit|':>11} {'top-1':>6} {'KL':>9} {'ppl':>9} {'NaN/inf':>7}"
    print(head)
    for r in data["rows"]:
        if r["error"]:
            print(f"{r['precision']:<9} {r['error']}")
            continue
        print(f"{r['precision']:<9} {_fmt(r['file_bytes'] and r['file_bytes'] / 1e6, '{:8.2f}')} "
              f"{_fmt(r['size_ratio'], '{:6.3f}')} {_fmt(r['runtime_bytes'] and r['runtime_bytes'] / 1e6, '{:10.1f}')} "
              f"{_fmt(r['latency_ms_median'], '{:9.2f}')} {_fmt(r['latency_ms_p95'], '{:8.2f}')} "
              f"{_fmt(r['max_abs_logit_diff'], '{:11.2e}')} {_fmt(r['top1_agreement'], '{:6.1%}')} "
              f"{_fmt(r['kl'], '{:9.2e}')} {_fmt(r['perplexity'], '{:9.3f}')} "
              f"{(r['nan_count'] or 0) + (r['inf_count'] or 0):>7}")
    for r in data["rows"]:
        for n in r["notes"]:
            if n not in data["notes"]:
                print(f"note ({r['precision']}): {n}")
    for n in data["notes"]:
        print(f"note: {n}")
    return 0
