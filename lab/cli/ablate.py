"""tvlab ablate: knock out heads or blocks and print how the prediction moves; --sweep
ablates every head alone and prints the layer × head map of the target's change."""
from __future__ import annotations

import sys

from lab.cli import print_json

NAME = "ablate"
HELP = "ablate attention heads / blocks and compare the prediction; --sweep: every head alone"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--text", required=True, help="the input text (encoder-only: put the mask token in it)")
    p.add_argument("--heads", default="", help="heads to ablate together, LAYER.HEAD: 3.1,5.7 "
                   "(encoder-decoder: encoder:0.1, decoder:1.2, cross:0.3)")
    p.add_argument("--attn", default="", help="whole attention blocks to ablate: layer numbers, e.g. 2 or 0,3")
    p.add_argument("--mlp", default="", help="MLP blocks to ablate: layer numbers, e.g. 2")
    p.add_argument("--kind", default="zero", choices=["zero", "mean"],
                   help="replace by zero, or by the mean over this input's positions")
    p.add_argument("--target", default=None, help="the token to follow (default: the model's top-1; "
                   "several pieces: the first is used)")
    p.add_argument("--sweep", action="store_true", help="also ablate every head alone: a layer x head map")
    p.add_argument("--stack", default=None, help="--sweep: only this stack (encoder, decoder, cross)")
    p.add_argument("--decoder-text", default=None, help="encoder-decoder: what the decoder reads "
                   "(default: the model's own greedy output)")
    p.add_argument("--top", type=int, default=10, help="how many candidates to list")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--json", action="store_true")


def _progress(fraction: float, stage: str) -> None:
    print(f"\r{stage} ({fraction:.0%})", end="", file=sys.stderr, flush=True)


def run(args) -> int:
    from lab.core import interventions as iv
    from lab.core import models
    from lab.core.jobs import Job

    lm = models.load(args.model, args.device, args.dtype)
    heads = iv.parse_heads(lm, args.heads)
    attn = iv.parse_blocks(lm, args.attn, "attn")
    mlp = iv.parse_blocks(lm, args.mlp, "mlp")
    report: dict = {"model": lm.card.name}
    res = None
    if heads or attn or mlp or not args.sweep:
        res = iv.ablate(lm, args.text, heads=heads, attn=attn, mlp=mlp, kind=args.kind, target=args.target,
                        k=args.top, decoder_text=args.decoder_text)
        report["ablation"] = res.to_dict()
    sw = None
    if args.sweep:
        job = None if args.json or not sys.stderr.isatty() else Job(_progress)
        sw = iv.sweep(lm, args.text, stacks=[args.stack] if args.stack else None, kind=args.kind,
                      target=args.target, decoder_text=args.decoder_text, job=job)
        if job is not None:
            print(file=sys.stderr)
        report["sweep"] = sw.to_dict()
    if args.json:
        print_json(report)
        return 0
    for note in dict.fromkeys((res.notes if res else []) + (sw.notes if sw else [])):
        print(f"note: {note}")
    if res is not None:
        _print_ablation(res)
    if sw is not None:
        _print_sweep(sw)
    return 0


def _print_ablation(res) -> None:
    what = [f"head {s + ':' if s not in ('self',) else ''}{layer}.{h}" for s, layer, h in res.heads]
    what += [f"attention block {layer}" for _, layer in res.attn_blocks]
    what += [f"MLP block {layer}" for _, layer in res.mlp_blocks]
    print(f"{res.model}: ablated ({res.kind}) {', '.join(what)}")
    if res.readout == "embedding":
        print(f"  cosine(before, after): mean embedding {res.cosine_mean:.6f}, first token {res.cosine_first:.6f}")
        return
    print(f"  target {res.target.piece!r}: log p {res.logp_before:.4f} -> {res.logp_after:.4f} "
          f"(delta {res.delta_logp:+.4f}); KL(before||after) {res.kl:.5f} nats")
    print(f"  {'before':<26}{'after':<26}")
    for b, a in zip(res.top, res.top_after):
        print(f"  {b.piece!r:>12} {b.before:.4f} {b.delta:+.4f}   {a.piece!r:>12} {a.after:.4f}")


def _print_sweep(sw) -> None:
    tgt = f" of {sw.target.piece!r}" if sw.target else ""
    print(f"head sweep ({sw.kind}): {sw.measure}{tgt}")
    for stack, m in sw.maps.items():
        print(f"  {stack} stack, rows = layers, columns = heads")
        print("        " + "".join(f"{h:>8}" for h in range(m.shape[1])))
        for layer, row in enumerate(m):
            print(f"  {layer:>5} " + "".join(f"{v:>8.3f}" for v in row))
