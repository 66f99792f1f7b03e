"""tvlab decode: step-through decoding, headless (the twin of the decoding panel)."""
from __future__ import annotations

import argparse
import dataclasses
import time

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "decode"
HELP = "decode token by token with generate()'s processors; print every step's candidates"


def _number(kind):
    def parse(text):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole number' if kind is int else 'number'}: {text!r}")
    return parse


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--prompt", default="", help="the prompt (empty: start from the model's BOS token)")
    p.add_argument("--strategy", choices=["greedy", "sample"], default=None,
                   help="greedy or sample (default: the model's generation config)")
    p.add_argument("--temperature", type=_number(float), default=None, help="0 means greedy")
    p.add_argument("--top-k", type=_number(int), default=None, help="0 turns top-k off")
    p.add_argument("--top-p", type=_number(float), default=None, help="1.0 turns top-p off; must be in (0, 1]")
    p.add_argument("--min-p", type=_number(float), default=None, help="0 turns min-p off")
    p.add_argument("--repetition-penalty", type=_number(float), default=None, help="1.0 turns it off")
    p.add_argument("--seed", type=_number(int), default=None)
    p.add_argument("--max-new-tokens", type=_number(int), required=True)
    p.add_argument("--no-stop-at-eos", action="store_true", help="keep going after end-of-sequence")
    p.add_argument("--candidates", type=_number(int), default=20, help="candidates listed per step")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--compare", default=None, metavar="fp16|bf16|FILE.onnx",
                   help="read every step with the model at another precision too (fp16, bf16, fp32 "
                        "or an ONNX file from the converter): both top-k, KL, top-1 agreement")
    p.add_argument("--json", action="store_true", help="print JSON")


def settings_from_args(args, base):
    """The model's defaults overridden by the flags given; validated (InputError on bad values)."""
    changes = {}
    for flag, name in (("strategy", "strategy"), ("temperature", "temperature"), ("top_k", "top_k"),
                       ("top_p", "top_p"), ("min_p", "min_p"), ("repetition_penalty", "repetition_penalty"),
                       ("seed", "seed"), ("max_new_tokens", "max_new_tokens")):
        v = getattr(args, flag, None)
        if v is not None:
            changes[name] = v
    if getattr(args, "no_stop_at_eos", False):
        changes["stop_at_eos"] = False
    if "strategy" not in changes and any(k in changes for k in ("temperature", "top_k", "top_p", "min_p", "seed")):
        changes["strategy"] = "sample"   # asking for a sampling knob means sampling
    return base.with_(**changes).validated()


def run(args) -> int:
    from lab.core import sampling

    # Check the values before loading anything, so a typo fails at once.
    settings_from_args(args, sampling.SamplingSettings())
    if args.candidates < 1:
        raise InputError("--candidates must be 1 or more.")
    if args.compare is not None:
        check_compare_spec(args.compare)
    from lab.core import models
    from lab.core.decoding import DecodeSession, FillMaskSession, mask_note

    lm = models.load(args.model, args.device, args.dtype)
    settings = settings_from_args(args, sampling.model_defaults(lm.model).settings)
    if lm.kind == models.KIND_ENCODER:
        if args.compare is not None:
            raise InputError(f"--compare needs a model that generates; {lm.card.name} is encoder-only "
                             "(fill-mask has no decode path to compare).")
        return _fill_mask(args, lm, settings, FillMaskSession, mask_note)
    t0 = time.perf_counter()
    dec = DecodeSession(lm, args.prompt, settings)
    prefill_ms = (time.perf_counter() - t0) * 1000
    t = time.perf_counter()
    nodes = dec.run()
    gen_ms = (time.perf_counter() - t) * 1000
    steps = []
    for node in nodes:
        v = dec.view(node, n=args.candidates)
        steps.append({"token_id": node.token_id, "token": _tok(dec, node.token_id), "how": node.how,
                      "candidates": [c.to_dict() for c in v.candidates[:max(args.candidates, 1)]]
                      + [c.to_dict() for c in v.candidates[args.candidates:] if c.chosen],
                      "entropy_bits": v.entropy_bits, "p_eos": v.p_eos,
                      "draw": dataclasses.asdict(v.draw) if v.draw is not None else None})
    out = {
        "model": lm.card.name,
        "kind": lm.kind,
        "prompt": args.prompt,
        "prompt_ids": dec.encoder_ids if dec.seq2seq else dec.prefix_ids,
        "decoder_start_ids": dec.prefix_ids if dec.seq2seq else [],
        "generated_ids": dec.generated_ids(),
        "text": dec.text(),
        "stop": dec.stop_reason() or "cancelled",
        "settings": settings.to_dict(),
        "effective": settings.describe(),
        "max_new_tokens": dec.max_new_tokens,
        "steps": steps,
        "ms_per_step": gen_ms / len(nodes) if nodes else None,
        "prefill_ms": prefill_ms,
        "cum_logprob": dec.cum_logprob(),
        "notes": dec.notes,
    }
    comparison = _compare(lm, dec, args.compare) if args.compare is not None else None
    if comparison is not None:
        out["compare"] = comparison.to_dict()
    if args.json:
        print_json(out)
        return 0
    for n in dec.notes:
        print(f"note: {n}")
    print(f"{lm.card.name} · {settings.describe()}")
    print(f"prompt: {args.prompt!r}")
    for i, s in enumerate(steps, 1):
        top = ", ".join(f"{c['token']!r} {c['prob']:.3f}" for c in s["candidates"][:5])
        print(f"{i:3d}  {s['token']!r:<16} {s['how']:<7} H={s['entropy_bits']:.2f} bits  P(EOS)={s['p_eos']:.3f}  | {top}")
    if comparison is not None:
        _print_comparison(comparison)
    print(f"text: {out['text']!r}")
    print(f"stopped: {out['stop']} · {len(nodes)} tokens · "
          + (f"{out['ms_per_step']:.2f} ms/step" if nodes else "no steps"))
    return 0


def check_compare_spec(spec: str) -> None:
    """InputError for a --compare value that cannot work, before any model is loaded."""
    from pathlib import Path

    from lab.core.precision.twins import TORCH_SPECS

    if spec.lower() in TORCH_SPECS:
        return
    if not spec.lower().endswith(".onnx"):
        raise InputError(f"Unknown --compare {spec!r}: choose fp16, bf16, fp32 or an .onnx file.")
    if not Path(spec).expanduser().is_file():
        raise InputError(f"No ONNX file at {spec}: convert the model first (tvlab convert).")


def _compare(lm, dec, spec):
    from lab.core.decoding import DecodeComparer
    from lab.core.precision.twins import open_twin

    comparer = DecodeComparer(open_twin(lm.model, lm.tokenizer, spec))
    try:
        return comparer.compare(dec)
    finally:
        comparer.close()


def _print_comparison(c) -> None:
    print(f"compare with {c.label} on {c.device}: {c.note}")
    for s in c.steps:
        twin_tok = s.twin_top[0][1] if s.twin_top else "?"
        mark = "agree" if s.agree else "DIFFER"
        print(f"{s.step:3d}  {c.label}: {twin_tok!r:<16} KL={s.kl:.2e} nats  top-1 {mark}")
    agreement = "n/a" if c.agreement is None else f"{c.agreement:.0%}"
    first = "none" if c.first_divergence is None else f"step {c.first_divergence}"
    print(f"top-1 agreement: {agreement} of {len(c.steps)} steps · first greedy divergence: {first}")


def _tok(dec, tid):
    from lab.core.decoding import token_text

    return token_text(dec.tokenizer, tid)


def _fill_mask(args, lm, settings, FillMaskSession, mask_note) -> int:
    note = mask_note(lm, args.prompt)
    fm = FillMaskSession(lm, args.prompt, settings)
    t = time.perf_counter()
    filled = fm.run()
    ms = (time.perf_counter() - t) * 1000
    steps = []
    for mv in fm.views(n=args.candidates):
        steps.append({"position": mv.position, "token_id": mv.filled_with,
                      "token": _fill_tok(fm, mv.filled_with),
                      "candidates": [c.to_dict() for c in mv.view.candidates[:args.candidates]]})
    out = {"model": lm.card.name, "kind": lm.kind, "prompt": args.prompt, "prompt_ids": fm.original_ids,
           "generated_ids": [fm.ids[p] for p in fm.positions], "text": fm.text(), "steps": steps,
           "ms_per_step": ms / len(filled) if filled else None, "notes": [note] if note else []}
    if args.json:
        print_json(out)
    else:
        print(f"filled: {out['text']!r}")
    return 0


def _fill_tok(fm, tid):
    from lab.core.decoding import token_text

    return token_text(fm.tokenizer, tid) if tid is not None else None
