"""ONNX conversion: sizes, CPU latency and time of fp32 / fp16 / int8, and fidelity on the zoo.

Sizes, latency and export time are measured on a GPT-2-small-sized model (12 layers, 768
hidden, 12 heads, vocab 50257: 124M parameters) built in memory with random weights;
every ratio's baseline is the fp32 ONNX file of the same run. Top-1 agreement needs a
trained model (a random one's logits are nearly flat, so its top-1 flips on noise): it is
measured on zoo:bard-gpt's evaluation text when the zoo is installed.

Targets: fp16 file <= 0.52x fp32, int8 <= 0.35x; int8 CPU latency reported
(aim: faster than fp32); export of the three precisions < 3 minutes; on zoo:bard-gpt
int8 top-1 agreement >= 95% and fp16 >= 99%.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from lab.bench import Figure

NAME = "convert"
PRECISIONS = ("fp32", "fp16", "int8")


def _tokenizer():
    """A byte-level BPE tokenizer trained in memory on the evaluation text (ids < 50257)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from lab.core.precision import EVAL_TEXT

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([EVAL_TEXT] * 4, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def build(quick: bool):
    import torch
    import transformers as tf

    from lab.core.models import KIND_DECODER, LoadedModel, describe

    torch.manual_seed(0)
    if quick:
        cfg = tf.GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=50257, n_positions=256)
        name = "gpt2-mini (random, quick)"
    else:
        cfg = tf.GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
        name = "gpt2-small-sized (random, 124M)"
    model = tf.GPT2LMHeadModel(cfg).eval()
    tok = _tokenizer()
    card = describe(model, tok, ref=name, path=Path("(in memory)"), source="bench", kind=KIND_DECODER,
                    device="cpu", dtype="fp32", notes=[])
    return LoadedModel(model=model, tokenizer=tok, card=card, device="cpu", dtype="fp32")


def _fp32_kept(row) -> str:
    kept = row.bytes_by_dtype.get("float32", 0)
    return f"{kept / 1e3:,.1f} KB fp32 kept: LayerNorm weights/biases + scalars" if kept < 1e6 else \
        f"{kept / 1e6:,.1f} MB fp32 kept"


def run(device: str, quick: bool) -> list[Figure]:
    from lab.core import models, precision

    figures: list[Figure] = []
    lm = build(quick)
    tmp = Path(tempfile.mkdtemp(prefix="tvlab-bench-convert-"))
    try:
        t0 = time.perf_counter()
        report = precision.convert(lm, tmp / "onnx", PRECISIONS, reuse_export=False,
                                   latency_runs=5 if quick else 10)
        total = time.perf_counter() - t0
        rows = {r.precision: r for r in report.rows}
        f32, f16, i8 = rows["fp32"], rows["fp16"], rows["int8"]
        size = lm.card.ref
        figures.append(Figure(f"fp16 file size, {size} ({_fp32_kept(f16)})", f16.file_bytes / 1e6, "MB",
                              f32.file_bytes / 1e6, "fp32 ONNX file", "ratio <= 0.52",
                              f16.file_bytes / f32.file_bytes <= 0.52))
        figures.append(Figure(f"int8 file size, {size} ({_fp32_kept(i8)})", i8.file_bytes / 1e6, "MB",
                              f32.file_bytes / 1e6, "fp32 ONNX file", "ratio <= 0.35",
                              i8.file_bytes / f32.file_bytes <= 0.35))
        lat = f"CPU latency, batch 1 x {report.eval_tokens} tokens, {report.threads} threads, median"
        figures.append(Figure(f"int8 {lat}", i8.latency_ms_median, "ms", f32.latency_ms_median, "fp32 ONNX",
                              "ratio < 1 (aim: faster than fp32)", i8.latency_ms_median < f32.latency_ms_median))
        figures.append(Figure(f"fp16 {lat} (CPU provider: few fp16 kernels)", f16.latency_ms_median, "ms",
                              f32.latency_ms_median, "fp32 ONNX"))
        figures.append(Figure(f"runtime memory int8 (session + one run), {size}", i8.runtime_bytes / 1e6, "MB",
                              f32.runtime_bytes / 1e6, "fp32 ONNX"))
        t = report.timings_s
        making = t.get("export", 0) + t.get("convert_fp16", 0) + t.get("quantize_int8", 0)
        figures.append(Figure(f"export + fp16 + int8 files, {size}", making, "s", target="< 180 s",
                              ok=(making < 180) if not quick else None))
        figures.append(Figure(f"whole conversion incl. verification of 3 files, {size}", total, "s"))
        figures.append(Figure("fp32 ONNX max |logit - torch|", f32.max_abs_logit_diff, "", target="<= 1e-4",
                              ok=f32.max_abs_logit_diff <= 1e-4))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        del lm

    if "bard-gpt" in models.zoo_models():
        zoo = models.load("zoo:bard-gpt")
        tmp = Path(tempfile.mkdtemp(prefix="tvlab-bench-convert-"))
        try:
            report = precision.convert(zoo, tmp / "onnx", PRECISIONS, latency_runs=3)
            rows = {r.precision: r for r in report.rows}
            base = rows["fp32"].top1_agreement * 100
            for p, target in (("fp16", 99.0), ("int8", 95.0)):
                v = rows[p].top1_agreement * 100
                figures.append(Figure(f"{p} top-1 agreement with torch fp32, zoo:bard-gpt evaluation text "
                                      f"({report.eval_tokens} tokens)", v, "%", base, "fp32 ONNX",
                                      f">= {target:g}%", v >= target))
            figures.append(Figure("int8 perplexity change, zoo:bard-gpt", rows["int8"].perplexity_change, "",
                                  baseline_name="torch fp32"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        figures.append(Figure("top-1 agreement on zoo:bard-gpt: zoo not installed, not measured", float("nan"), "%"))
    return figures
