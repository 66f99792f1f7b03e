"""tvlab bench attention: capture overhead, redraw speed, stored bytes, first head view.

The model is GPT-2-small-sized (12 layers, 12 heads, 768 hidden) with random weights,
built in memory; inputs are words of a word-level tokenizer built here, so a text of N
words is exactly N tokens. Baselines are plain transformers (or plain pyqtgraph) in the
same run. ``--quick`` uses a 4-layer model and short inputs.
"""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from lab.bench import Figure, time_ms

NAME = "attention"

WORDS = ("the teacher taught students with a book while river bank water cash noon animal street "
         "it was too tired dog bites man question summer day lovely temperate").split()


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


def _model(device: str, quick: bool, positions: int):
    """A LoadedModel of GPT-2-small size (random weights), loaded with SDPA like the lab does."""
    import torch
    import transformers as tf

    from lab.core.models import KIND_DECODER, LoadedModel, describe

    torch.manual_seed(0)
    layers, heads, hidden = (4, 4, 256) if quick else (12, 12, 768)
    cfg = tf.GPT2Config(n_layer=layers, n_head=heads, n_embd=hidden, n_positions=positions, vocab_size=50257)
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").eval().to(device)
    tok = _tokenizer()
    card = describe(model, tok, ref="bench:gpt2-small-random", path=Path("gpt2-small-random"), source="memory",
                    kind=KIND_DECODER, device=device, dtype="fp32", notes=[])
    return LoadedModel(model=model, tokenizer=tok, card=card, device=device, dtype="fp32")


def _text(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _bare_forward(lm, text: str):
    """What a user would write with transformers: eager attention, output_attentions=True."""
    import torch

    ids = torch.tensor([lm.tokenizer(text)["input_ids"]], device=lm.device)

    def run():
        with torch.inference_mode():
            return lm.model(input_ids=ids, output_attentions=True)

    return run


def _qt():
    """The QApplication, or None where Qt is not installed (a bare GPU box): UI figures are skipped."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from lab.ui.app import application
    except ImportError:          # no Qt here (a GPU machine): no view timings
        return None
    return application()


def run(device: str, quick: bool) -> list[Figure]:
    from lab.core import trace as core_trace

    n = 128 if quick else 512
    repeat = 2 if quick else 5
    sync = _sync(device)
    figures: list[Figure] = []
    lm = _model(device, quick, positions=2048)
    text = _text(n)
    L, H = lm.card.layers, lm.card.heads

    # 1. capture vs a bare forward with output_attentions=True
    bare = _bare_forward(lm, text)
    with lm.attention("eager"):
        t_bare = time_ms(bare, repeat=repeat, sync=sync)
    t_capture = time_ms(lambda: core_trace.capture(lm, text), repeat=repeat, sync=sync)
    figures.append(Figure(f"capture {n} tokens ({L}x{H} heads)", t_capture, "ms", t_bare,
                          "transformers forward, output_attentions=True", "ratio <= 1.3",
                          t_capture / t_bare <= 1.3))

    app = _qt()
    tr = core_trace.capture(lm, text)
    labels = core_trace.display_tokens(tr, "self")
    mask = tr.mask("self")
    hv = None
    if app is None:
        print("  (PySide6 is not installed here: the head and model view figures are skipped)")
    else:
        hv, ui_figures = _ui_figures(app, tr, labels, mask, n, repeat)
        figures += ui_figures

    # 4. prompt to first head view vs 2x bare forward + one head's transfer
    def first_view():
        t = core_trace.capture(lm, text)
        m = t.head("self", 0, 0)
        if hv is not None:
            hv.set_matrix(m, labels, labels, mask=mask)
            hv.graphics.viewport().repaint()

    t_first = time_ms(first_view, repeat=repeat, sync=sync)
    with lm.attention("eager"):
        out = bare()
    t_transfer = time_ms(lambda: out.attentions[0][0, 0].float().cpu().numpy(), repeat=repeat, sync=sync)
    out = None  # frees the attentions (not `del`: the lambda above still names it)
    base = 2 * t_bare + t_transfer
    figures.append(Figure(f"prompt to first head view, {n} tokens", t_first, "ms", base,
                          "2 x bare forward + one head's transfer", "ratio <= 1.0", t_first <= base))
    del tr
    gc.collect()

    # 5. stored bytes at 2,048 tokens (quick: computed from the storage rule, not captured)
    T = 2048
    ref_bytes = 12 * 12 * T * T * 4
    if quick:
        stored = core_trace.attention_bytes(12, 12, T, T)
        name = "stored attentions, 2,048 tokens, 12x12 (storage rule)"
    else:
        t0 = time.perf_counter()
        big = core_trace.capture(lm, _text(T), resident=device != "cpu")
        seconds = time.perf_counter() - t0
        sb = big.stored_bytes()
        stored = sb["host"]
        kept = f", {sb['device'] / 1e6:,.0f} MB kept on {device}" if sb["device"] else ""
        name = f"stored attentions on the host, 2,048 tokens, 12x12 (capture {seconds:.1f} s{kept})"
        del big
        gc.collect()
    figures.append(Figure(name, stored / 1e6, "MB", ref_bytes / 1e6, "float32 as transformers returns them",
                          "about 1 GB or less", stored <= 1.25e9))
    if device.startswith("cuda") and not quick:
        del lm
        gc.collect()
        figures += _llama_1b(device, sync)
    return figures


def _llama_1b(device: str, sync) -> list[Figure]:
    """The issue's own case: a 1B Llama-style model, 2,048 tokens, on a GPU."""
    import torch
    import transformers as tf

    from lab.core import trace as core_trace
    from lab.core.models import KIND_DECODER, LoadedModel, describe

    cfg = tf.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096)
    with torch.device(device):
        model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16).eval()
    tok = _tokenizer()
    card = describe(model, tok, ref="bench:llama-1b-random", path=Path("llama-1b-random"), source="memory",
                    kind=KIND_DECODER, device=device, dtype="bf16", notes=[])
    lm = LoadedModel(model=model, tokenizer=tok, card=card, device=device, dtype="bf16")
    text = _text(2048)
    bare = _bare_forward(lm, text)
    with lm.attention("eager"):
        t_bare = time_ms(bare, repeat=3, sync=sync)
        out = bare()
        t_head = time_ms(lambda: out.attentions[0][0, 0].float().cpu().numpy(), repeat=3, sync=sync)
        t_all = time_ms(lambda: [a.float().cpu().numpy() for a in out.attentions], repeat=1, warmup=0, sync=sync)
        out = None  # frees the attentions (not `del`: the lambdas above still name it)
    t_first = time_ms(lambda: core_trace.capture(lm, text).head("self", 0, 0), repeat=3, sync=sync)
    base = 2 * t_bare + t_head
    return [
        Figure("1B Llama-style, 2,048 tokens: prompt to first head (capture + head)", t_first, "ms", base,
               "2 x bare forward + one head's transfer", "ratio <= 1.0", t_first <= base),
        Figure("1B Llama-style, 2,048 tokens: copying all attentions to the host (what the lab avoids)",
               t_all, "ms", t_bare, "bare forward"),
    ]


def _ui_figures(app, tr, labels, mask, n: int, repeat: int):
    import numpy as np
    import pyqtgraph as pg

    from lab.ui.widgets.attention_views import ModelView
    from lab.ui.widgets.heatmap import Heatmap

    figures = []
    L, H = tr.layers("self"), tr.heads("self")
    # 2. head view redraw when the head changes (fixed levels, LUT) vs naive auto-levelled ImageItem
    hv = Heatmap()
    hv.resize(900, 800)
    hv.show()
    hv.set_matrix(tr.head("self", 0, 0), labels, labels, mask=mask)
    app.processEvents()
    state = {"i": 0}

    def redraw():
        state["i"] += 1
        i = state["i"]
        hv.set_matrix(tr.head("self", i % L, (i // L) % H), labels, labels, mask=mask, keep_view=True)
        hv.graphics.viewport().repaint()

    t_redraw = time_ms(redraw, repeat=repeat * 4)
    naive = pg.GraphicsLayoutWidget()
    naive.resize(900, 800)
    naive_img = pg.ImageItem()
    naive.addPlot().addItem(naive_img)
    naive.show()
    app.processEvents()

    def naive_redraw():
        state["i"] += 1
        i = state["i"]
        naive_img.setImage(np.asarray(tr.attentions["self"][i % L, (i // L) % H], dtype=np.float64))
        naive.viewport().repaint()

    t_naive = time_ms(naive_redraw, repeat=repeat * 4)
    figures.append(Figure(f"head view redraw, {n} tokens", t_redraw, "ms", t_naive,
                          "plain pyqtgraph ImageItem (auto levels)", "< 30 ms", t_redraw < 30))

    # 3. model view: every head of every layer as thumbnails (reduction + drawing)
    mv = ModelView()
    mv.resize(900, 800)
    mv.show()
    app.processEvents()

    def model_view():
        tr.thumbs.clear()
        mv.set_thumbs(tr.thumbnails("self"))
        mv.graphics.viewport().repaint()

    t_model = time_ms(model_view, repeat=repeat)
    full = pg.ImageItem(axisOrder="row-major")
    naive.getItem(0, 0).addItem(full)

    def full_mosaic():
        a = np.asarray(tr.attentions["self"], dtype=np.float32)
        full.setImage(a.transpose(0, 2, 1, 3).reshape(L * n, H * n), autoLevels=False, levels=(0, 1))
        naive.viewport().repaint()

    t_full = time_ms(full_mosaic, repeat=repeat)
    figures.append(Figure(f"model view {L}x{H} heads, {n} tokens", t_model, "ms", t_full,
                          "one full-resolution mosaic image", "< 300 ms", t_model < 300))

    return hv, figures
