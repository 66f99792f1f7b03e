"""tvlab bench interventions: the head sweep and the patching map against the sequential
forward passes they replace.

The model is the attention suite's GPT-2-small-sized one (12 layers × 12 heads, 768
hidden, random weights, SDPA as the lab loads it). Baselines, measured in the same run:
one plain forward of the same input per ablated head (144) or per patched (layer,
position) (layers × positions). Targets: ratio ≤ 1.0 on the CPU, ≤ 0.25 on a GPU.
``--quick`` uses the 4-layer model and shorter inputs.
"""
from __future__ import annotations

from lab.bench import Figure, time_ms
from lab.bench.attention import _model, _sync, _text

NAME = "interventions"


def _sequential(lm, text: str, n: int, sync):
    """``n`` plain forwards of ``text``, one after another: what a loop of hooks would cost."""
    import torch

    ids = torch.tensor([lm.tokenizer(text)["input_ids"]], device=lm.device)

    def run():
        with torch.inference_mode():
            for _ in range(n):
                lm.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        sync()

    return run


def run(device: str, quick: bool) -> list[Figure]:
    from lab.core import interventions as iv

    sync = _sync(device)
    sweep_tokens, patch_tokens = (16, 8) if quick else (64, 32)
    lm = _model(device, quick, positions=max(sweep_tokens, patch_tokens) + 8)
    layers, heads = lm.card.layers, lm.card.heads
    target = "ratio <= 0.25" if device.startswith("cuda") else "ratio <= 1.0"
    limit = 0.25 if device.startswith("cuda") else 1.0
    figures = []
    # Each timed run is hundreds of forwards already: one run each, after a warm-up forward.
    _sequential(lm, _text(8), 2, sync)()

    text = _text(sweep_tokens)
    n = layers * heads
    t_sweep = time_ms(lambda: (iv.sweep(lm, text), sync()), repeat=1, warmup=0)
    t_base = time_ms(_sequential(lm, text, n, sync), repeat=1, warmup=0)
    figures.append(Figure(f"head sweep, {layers}x{heads} heads, {sweep_tokens} tokens", t_sweep, "ms", t_base,
                          f"{n} sequential forwards", target, t_sweep / t_base <= limit))

    words = _text(patch_tokens).split()
    clean, corrupt = " ".join(words), " ".join(["dog" if i == 1 else w for i, w in enumerate(words)])
    n = layers * patch_tokens
    t_patch = time_ms(lambda: (iv.patch(lm, clean, corrupt, "the", "river"), sync()), repeat=1, warmup=0)
    t_base = time_ms(_sequential(lm, corrupt, n, sync), repeat=1, warmup=0)
    figures.append(Figure(f"patching map, {layers} layers x {patch_tokens} positions (resid)", t_patch, "ms",
                          t_base, f"{n} sequential forwards", target, t_patch / t_base <= limit))
    return figures
