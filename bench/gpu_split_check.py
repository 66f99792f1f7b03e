"""Proof for issue 9 on a machine with >= 2 GPUs: a ~1B-parameter Llama-style model
(random weights) forced to split across GPUs by a per-GPU memory cap gives the same
greedy tokens and the same attentions as the unsplit model.

    python bench/gpu_split_check.py --out bench/results/DATE-split.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build(folder: Path) -> Path:
    import torch
    import transformers as tf

    import tiny_models

    tok = tiny_models.byte_bpe_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cuda:0"):
        model = tf.LlamaForCausalLM(cfg).to(torch.float16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=512)
    args = ap.parse_args()
    import numpy as np
    import torch

    from lab.core import models, trace
    from lab.core.decoding import DecodeSession
    from lab.core.sampling import SamplingSettings

    n_gpus = torch.cuda.device_count()
    result = {"gpus": [torch.cuda.get_device_name(i) for i in range(n_gpus)], "torch": torch.__version__}
    if n_gpus < 2:
        result["error"] = "needs two GPUs"
        Path(args.out).write_text(json.dumps(result, indent=2))
        return 1
    folder = build(Path(tempfile.mkdtemp()) / "llama-1b")
    text = " ".join(["the teacher taught the students with the book"] * 200)

    def run(device, max_memory=None):
        t = time.perf_counter()
        lm = models.load(str(folder), device=device, dtype="fp16", max_memory=max_memory)
        load_s = time.perf_counter() - t
        tr = trace.capture(lm, text[: args.tokens * 3])
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
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["split_is_real"] and result["greedy_identical"] and result["max_abs_attention_diff"] < 1e-2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
