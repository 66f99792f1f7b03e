"""tvlab attention: capture a text's attention and write the raw tensors as NPZ.

The NPZ holds ``tokens`` (and ``target_tokens`` for encoder-decoder models) and one
float32 array per stack, shaped [layer, head, query, key]: ``self`` for decoder-only and
encoder-only models, ``encoder``, ``decoder`` and ``cross`` for encoder-decoder ones.
"""
from __future__ import annotations

import sys

import numpy as np

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "attention"
HELP = "capture attention weights for a text; write NPZ, print shapes and per-head entropy"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--text", required=True, help="the input text")
    p.add_argument("--target", default=None, help="decoder text for encoder-decoder models "
                   "(default: the model's own greedy output)")
    p.add_argument("--npz", metavar="FILE", help="write the raw tensors here")
    p.add_argument("--layer", type=int, default=None, help="show one head: its layer (0 = first)")
    p.add_argument("--head", type=int, default=None, help="show one head: its index (0 = first)")
    p.add_argument("--stack", default=None, help="which stack --layer/--head refer to "
                   "(self, encoder, decoder, cross; default: the first)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--json", action="store_true", help="print shapes and per-layer summaries as JSON")


def _check_head(tr, stack, layer, head) -> None:
    n_layers, n_heads = tr.layers(stack), tr.heads(stack)
    if layer is not None and not 0 <= layer < n_layers:
        raise InputError(f"Layer {layer} is out of range: {tr.model} has layers 0-{n_layers - 1} in its {stack} stack.")
    if head is not None and not 0 <= head < n_heads:
        raise InputError(f"Head {head} is out of range: {tr.model} has heads 0-{n_heads - 1} in each layer.")


def summary(tr) -> dict:
    """Shapes and per-layer summaries (mean entropy per head, in nats) of every stack."""
    stacks = {}
    for stack in tr.stacks:
        a = tr.attentions[stack]
        ent = tr.entropy(stack)
        stacks[stack] = {
            "shape": list(a.shape), "dtype": "float32",
            "query": "target" if stack in ("decoder", "cross") else "source",
            "key": "target" if stack == "decoder" else "source",
            "causal": tr.causal(stack), "kv_heads": tr.kv_heads.get(stack, a.shape[1]),
            "layers": [{"layer": i, "mean_entropy_per_head": [round(float(x), 5) for x in ent[i]],
                        "mean_entropy": round(float(ent[i].mean()), 5),
                        "sharpest_head": int(np.argmin(ent[i])), "most_diffuse_head": int(np.argmax(ent[i]))}
                       for i in range(ent.shape[0])],
        }
    out = {"model": tr.model, "kind": tr.kind, "tokens": tr.tokens, "stacks": stacks,
           "warnings": tr.warnings, "notes": tr.notes}
    if tr.target_tokens:
        out["target_tokens"] = tr.target_tokens
    return out


def run(args) -> int:
    from lab.core import models
    from lab.core import trace as core_trace

    if args.npz is None and not args.json and args.layer is None and args.head is None:
        raise InputError("Nothing to do: give --npz FILE, --json, or --layer/--head to print one head.")
    lm = models.load(args.model, args.device, args.dtype)
    tr = core_trace.capture(lm, args.text, args.target)
    for w in tr.warnings:
        print(f"tvlab: warning: {w}", file=sys.stderr)
    stack = args.stack or tr.stacks[0]
    if stack not in tr.attentions:
        raise InputError(f"{tr.model} has no {stack!r} stack; it has {', '.join(tr.stacks)}.")
    _check_head(tr, stack, args.layer, args.head)
    written = core_trace.save_npz(tr, args.npz) if args.npz else None
    report = summary(tr)
    if written:
        report["npz"] = written
    one = None
    if args.layer is not None or args.head is not None:
        layer = args.layer if args.layer is not None else 0
        head = args.head if args.head is not None else 0
        m = tr.head(stack, layer, head)
        q_labels = core_trace.display_tokens(tr, stack, "query")
        k_labels = core_trace.display_tokens(tr, stack, "key")
        one = {"stack": stack, "layer": layer, "head": head, "weights": m.round(6).tolist(),
               "top_key_per_query": [{"query": q_labels[i], "key": k_labels[int(np.argmax(m[i]))],
                                      "weight": round(float(np.max(m[i])), 6)} for i in range(m.shape[0])]}
        report["head"] = one
    if args.json:
        print_json(report)
        return 0
    print(f"{tr.model} ({tr.kind}), {len(tr.tokens)} tokens" +
          (f", {len(tr.target_tokens)} target tokens" if tr.target_tokens else ""))
    for s, info in report["stacks"].items():
        print(f"  {s:8s} {'x'.join(str(x) for x in info['shape'])} [layer, head, query, key] float32")
        for layer in info["layers"]:
            ents = " ".join(f"{x:.2f}" for x in layer["mean_entropy_per_head"])
            print(f"    layer {layer['layer']:>2}: mean entropy per head (nats) {ents}")
    if one:
        print(f"  {stack} layer {one['layer']} head {one['head']}: strongest key per query")
        for row in one["top_key_per_query"]:
            print(f"    {row['query']:>14} -> {row['key']:<14} {row['weight']:.3f}")
    if written:
        print(f"wrote {written}")
    return 0
