"""tvlab patch: activation patching, a layer × position map of how much of the clean
answer each patched activation restores (0 = corrupted, 1 = clean)."""
from __future__ import annotations

from lab.cli import print_json

NAME = "patch"
HELP = "activation patching: copy clean activations into a corrupted run, layer x position"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    p.add_argument("--clean", required=True, help="the clean prompt")
    p.add_argument("--corrupt", required=True, help="the corrupted prompt (same number of tokens)")
    p.add_argument("--answer", required=True, help="the clean prompt's answer token")
    p.add_argument("--wrong", required=True, help="the corrupted prompt's answer token")
    p.add_argument("--site", default="resid", choices=["resid", "attn", "mlp"],
                   help="residual stream entering each layer, attention block output, or MLP block output")
    p.add_argument("--align", action="store_true", help="when the token counts differ, keep the last "
                   "tokens of the longer prompt")
    p.add_argument("--decoder-text", default=None, help="encoder-decoder: what the decoder reads after "
                   "its start token (default: nothing)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from lab.core import interventions as iv
    from lab.core import models
    from lab.core.trace import display_token

    lm = models.load(args.model, args.device, args.dtype)
    res = iv.patch(lm, args.clean, args.corrupt, args.answer, args.wrong, site=args.site, align=args.align,
                   decoder_text=args.decoder_text)
    if args.json:
        print_json(res.to_dict())
        return 0
    for note in res.notes:
        print(f"note: {note}")
    print(f"{res.model}: patching the {iv.SITE_LABELS[res.site]} ({res.stack} stack); "
          f"logit difference {res.answer.piece!r} - {res.wrong.piece!r}: clean {res.ld_clean:.4f}, "
          f"corrupted {res.ld_corrupt:.4f}; 0 = corrupted, 1 = clean")
    labels = [display_token(t) for t in res.corrupt_tokens]
    width = max(7, *(len(t) + 1 for t in labels))
    print("layer " + "".join(f"{t[:width - 1]:>{width}}" for t in labels))
    for layer, row in enumerate(res.map):
        print(f"{layer:>5} " + "".join(f"{v:>{width}.3f}" for v in row))
    return 0
