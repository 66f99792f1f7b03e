"""Decode step latency: the lab's DecodeSession against transformers' generate().

The model is built in memory with random weights (no download): GPT-2-small-sized
(12 layers, 768 hidden, 12 heads, vocab 50257), and on CUDA also a 1.1B Llama-style
config (TinyLlama's shape). Per-token latency is ``(T(N tokens) - T(1 token)) / (N - 1)``
for both, so the prompt's prefill cancels out; the two are timed interleaved, best of
the repeats. Target: the lab's step within 1.15x of generate()'s.
"""
from __future__ import annotations

import time

from lab.bench import Figure

NAME = "decode"
TARGET = 1.15


def _card(model, name, device, dtype):
    from lab.core.models import KIND_DECODER, ModelCard

    cfg = model.config
    ctx = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    params = sum(p.numel() for p in model.parameters())
    return ModelCard(name=name, ref=name, path="(in memory)", source="bench", kind=KIND_DECODER,
                     model_type=cfg.model_type, architecture=type(model).__name__,
                     layers=getattr(cfg, "num_hidden_layers", 0), decoder_layers=0,
                     heads=getattr(cfg, "num_attention_heads", 0), kv_heads=getattr(cfg, "num_key_value_heads", 0) or 0,
                     hidden=getattr(cfg, "hidden_size", 0), vocab=cfg.vocab_size, context=ctx, params=params,
                     param_bytes=0, device=device, dtype=dtype, attn_implementation="sdpa")


def build(which: str, device: str, dtype: str):
    """A random-init model in memory, wrapped as a LoadedModel (no tokenizer needed)."""
    import torch
    import transformers as tf

    from lab.core.models import LoadedModel, torch_dtype

    torch.manual_seed(0)
    if which == "gpt2-small":
        cfg = tf.GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024)
        cls = tf.GPT2LMHeadModel
    elif which == "llama-1b":
        cfg = tf.LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                             num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)
        cls = tf.LlamaForCausalLM
    else:
        raise ValueError(which)
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = cls(cfg).to(torch_dtype(dtype))
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return LoadedModel(model=model, tokenizer=None, card=_card(model, which, device, dtype), device=device, dtype=dtype)


def per_token_ms(lm, settings, prompt_ids, n_new: int, repeat: int, sync) -> tuple[float, float]:
    """(lab, generate) per-token milliseconds: best of ``repeat`` interleaved runs.

    Best-of rather than the median: a GPU decode of this size is bound by Python and
    kernel launches, and one stall (another process, the allocator, a clock change) in
    one side's run swung the median ratio from 0.9 to 1.4 between two runs on an H200.
    """
    import torch

    from lab.core.decoding import DecodeSession

    model = lm.model
    ids = torch.tensor([prompt_ids], device=lm.device)
    gen_kw = dict(do_sample=settings.do_sample, eos_token_id=None, pad_token_id=0)
    if settings.do_sample:
        gen_kw.update(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)

    def lab(n):
        s = settings.with_(max_new_tokens=n, stop_at_eos=False)
        dec = DecodeSession(lm, prompt_ids=prompt_ids, settings=s, eos_token_ids=[])
        dec.run()
        sync()

    def gen(n):
        torch.manual_seed(settings.seed)
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, **gen_kw)
        sync()

    def timed(fn, n):
        t = time.perf_counter()
        fn(n)
        return (time.perf_counter() - t) * 1000

    for f in (lab, gen):   # warm up both paths (imports, allocator, kernels)
        f(4)
    runs = {"lab": {1: [], n_new: []}, "gen": {1: [], n_new: []}}
    for _ in range(repeat):
        for name, f in (("lab", lab), ("gen", gen)):
            for n in (n_new, 1):
                runs[name][n].append(timed(f, n))
    lab_ms = (min(runs["lab"][n_new]) - min(runs["lab"][1])) / (n_new - 1)
    gen_ms = (min(runs["gen"][n_new]) - min(runs["gen"][1])) / (n_new - 1)
    return lab_ms, gen_ms


def run(device: str, quick: bool) -> list:
    import torch

    from lab.core.sampling import SamplingSettings

    dev = "cuda:0" if device.startswith("cuda") and ":" not in device else device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    configs = [("gpt2-small", "fp32")]
    if dev.startswith("cuda"):
        configs += [("gpt2-small", "fp16")]
        if not quick:
            configs += [("llama-1b", "fp16")]
    n_new = 16 if quick else 64
    repeat = 2 if quick else 7
    figures = []
    for which, dtype in configs:
        lm = build(which, dev, dtype)
        g = torch.Generator().manual_seed(1)
        prompt = torch.randint(0, lm.card.vocab, (32,), generator=g).tolist()
        for label, s in (("greedy", SamplingSettings(strategy="greedy")),
                         ("sample T=0.8 top-k 50 top-p 0.9",
                          SamplingSettings(strategy="sample", temperature=0.8, top_k=50, top_p=0.9, seed=3))):
            lab_ms, gen_ms = per_token_ms(lm, s, prompt, n_new, repeat, sync)
            ratio = lab_ms / gen_ms if gen_ms else None
            figures.append(Figure(name=f"decode step, {which} {dtype} on {dev}, {label}, {n_new} tokens",
                                  value=lab_ms, unit="ms/token", baseline=gen_ms,
                                  baseline_name="transformers generate()", target=f"ratio <= {TARGET}",
                                  ok=None if ratio is None else ratio <= TARGET))
        del lm
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
    return figures
