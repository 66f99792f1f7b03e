"""`tvlab bench split`: on a machine with two or more GPUs, a ~1B-parameter Llama-style
model (random weights) forced to split across GPUs by a per-GPU memory cap gives the same
greedy tokens and the same attentions as the unsplit model.

    tvlab bench split --out bench/results/DATE-split.json

A proof rather than a figure, so not part of ``tvlab bench all``: it needs two CUDA GPUs
and writes its own report; the exit status is 0 only when the split is real, the greedy
tokens are identical and no attention differs by 1e-2 or more.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from lab.core import atomic

NAME = "split"


def build(folder: Path) -> Path:
    """The ~1B model, built in fp16 on GPU 0 and saved to ``folder``."""
    import torch

    from lab.bench import tiny_models

    tiny_models.build("llama", folder, device="cuda:0", dtype=torch.float16, vocab_size=32000, hidden_size=2048,
                      intermediate_size=5632, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=8,
                      max_position_embeddings=4096)
    torch.cuda.empty_cache()
    return folder


def check(tokens: int = 512) -> dict:
    """Load the model whole on GPU 0 and split across GPUs; compare. Returns the report."""
    import numpy as np
    import torch

    from lab.core import models, trace
    from lab.core.decoding import DecodeSession
    from lab.core.sampling import SamplingSettings

    n_gpus = torch.cuda.device_count()
    result = {"gpus": [torch.cuda.get_device_name(i) for i in range(n_gpus)], "torch": torch.__version__}
    if n_gpus < 2:
        result["error"] = "needs two GPUs"
        result["ok"] = False
        return result
    folder = build(Path(tempfile.mkdtemp()) / "llama-1b")
    text = " ".join(["the teacher taught the students with the book"] * 200)

    def run(device, max_memory=None):
        t = time.perf_counter()
        lm = models.load(str(folder), device=device, dtype="fp16", max_memory=max_memory)
        load_s = time.perf_counter() - t
        tr = trace.capture(lm, text[: tokens * 3])
        heads = {(l, h): np.asarray(tr.head("self", l, h), np.float32) for l in (0, 7, 15) for h in (0, 5, 15)}
        s = DecodeSession(lm, "the teacher taught", SamplingSettings(max_new_tokens=32, stop_at_eos=False))
        for _ in range(32):
            s.step()
        out = {"card_params": lm.card.params, "device_map": models.device_map_summary(lm.card.device_map),
               "load_s": round(load_s, 2), "tokens": len(tr.tokens), "generated": s.generated_ids(), "heads": heads}
        del lm, tr, s
        torch.cuda.empty_cache()
        return out

    whole = run("cuda:0")
    split = run(models.SPLIT, {0: "1GiB", 1: "8GiB", "cpu": "16GiB"})
    diffs = {f"{l},{h}": float(np.abs(whole["heads"][(l, h)] - split["heads"][(l, h)]).max()) for (l, h) in whole["heads"]}
    result.update({
        "params": whole["card_params"],
        "split_devices": {k: len(v) for k, v in split["device_map"].items()},
        "split_is_real": len(split["device_map"]) >= 2,
        "tokens_captured": whole["tokens"],
        "greedy_identical": whole["generated"] == split["generated"],
        "greedy_ids": whole["generated"][:16],
        "max_abs_attention_diff": max(diffs.values()),
        "load_s": {"whole": whole["load_s"], "split": split["load_s"]},
    })
    result["ok"] = result["split_is_real"] and result["greedy_identical"] and result["max_abs_attention_diff"] < 1e-2
    return result


def main(out: str | None, tokens: int = 512) -> int:
    """Run the check, print its report, write it to ``out`` (if given); 0 when it holds."""
    result = check(tokens)
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out, text)
    print(text)
    return 0 if result["ok"] else 1
