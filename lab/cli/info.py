"""tvlab info: the model card of a model."""
from lab.cli import print_json

NAME = "info"
HELP = "print a model's card (architecture, layers, heads, parameters, bytes)"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps, or split (across GPUs)")
    p.add_argument("--max-memory", default="", help="with --device split: caps such as 0=20GiB,1=20GiB,cpu=64GiB")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from lab.core import models

    lm = models.load(args.model, args.device, args.dtype, max_memory=models.parse_max_memory(args.max_memory))
    card = lm.card.to_dict()
    if args.json:
        print_json(card)
        return 0
    width = max(len(k) for k in card)
    for k, v in card.items():
        if k == "notes":
            for n in v:
                print(f"{'note':<{width}}  {n}")
            continue
        print(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}")
    return 0
