"""tvlab objectives: the training example each pre-training objective makes from a text,
and the model's own loss on it token by token (the twin of the Objectives panel)."""
from __future__ import annotations

import sys

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "objectives"
HELP = "causal / masked / span-corruption examples of a text, and the model's per-token loss on it"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--text", required=True, help="the text (for encoder-decoder models: the input)")
    p.add_argument("--target", default=None,
                   help="encoder-decoder models: the output to score (default: the model's greedy output)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masked-LM and span-corruption draws")
    p.add_argument("--top", type=int, default=5, help="top predictions listed per token")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON")


def _fmt(x) -> str:
    return "" if x is None else f"{x:.3f}"


def run(args) -> int:
    if not args.text:
        raise InputError("--text is empty: give the text to analyse.")
    if args.seed < 0:
        raise InputError("--seed must be a whole number from 0.")
    if not 1 <= args.top <= 100:
        raise InputError("--top must be between 1 and 100.")
    from lab.core import models, objectives

    lm = models.load(args.model, args.device, "fp32")
    rep = objectives.analyse(lm, args.text, args.target, seed=args.seed, top_k=args.top)
    if args.json:
        print_json(rep.to_json())
    else:
        print(f"{rep.model} ({rep.kind}); seed {args.seed}")
        for e in rep.examples:
            print(f"\n{e.title}")
            width = [max(len(r.cells[c].text) if c < len(r.cells) else 0 for r in e.rows) for c in range(e.columns)]
            for r in e.rows:
                cells = " ".join(f"{(c.text or '·'):<{w}}" for c, w in zip(r.cells, width))
                print(f"  {r.name:<19} {cells}")
            for n in e.notes:
                print(f"  note: {n}")
        strip = rep.loss
        what = f" of the target {rep.target!r} ({rep.target_source})" if rep.target else ""
        print(f"\nLoss{what}: {strip.description}")
        print(f"  {'#':>4}  {'token':<16} {'nats':>7} {'bits':>7} {'rank':>5}  top predictions")
        for t in strip.tokens:
            top = ", ".join(f"{s!r} {p:.2f}" for s, p in t.top)
            print(f"  {t.index:>4}  {t.text:<16} {_fmt(t.nats):>7} {_fmt(t.bits):>7} {t.rank or '':>5}  {top}")
        print(f"  mean {strip.mean_nats:.4f} nats ({strip.mean_bits:.4f} bits) per token over {len(strip.scored)} "
              f"tokens; perplexity {strip.perplexity:.3f}")
    for n in rep.notes:
        print(f"tvlab: note: {n}", file=sys.stderr)
    return 0
