"""Tokens & embeddings speed.

1. Tokenise and redraw a 20,000-character text in the panel: the core tokenize() call,
   the embedding rows, the panel's update (chips laid out, counts, ids, source text,
   heatmap) and a synchronous repaint. Baseline: the tokenizer's own call with offsets.
   Target: under 150 ms.
2. Nearest neighbours over a 50,257 x 768 vocabulary (GPT-2's shape, random rows):
   one matrix-vector product on the cached normalised matrix, top 10 by cosine.
   Baseline: a plain numpy matrix-vector product. Target: under 50 ms.

The tokenizer is the zoo's bard-gpt when it is installed (the lab's default model), else
a byte-level BPE trained here in memory.
"""
from __future__ import annotations

import os
import random

from lab.bench import Figure, time_ms

NAME = "tokens"
TEXT_CHARS = 20_000
VOCAB, DIM = 50_257, 768

_WORDS = ("the teacher taught students with book river bank money cash deposited sat on and of to a in "
          "that is was he she it for as with his they at be this from or had by word but what some we "
          "can out other were all there when up use your how said an each which do their time if will "
          "naïve café façade coöperate résumé 🙂 שלום مرحبا 漢字 1984 3.14 — “quoted” (brackets)").split()


def sample_text(chars: int = TEXT_CHARS, seed: int = 0) -> str:
    rng = random.Random(seed)
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 16)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([". ", "? ", "! ", ".\n"])
        out.append(sentence)
        n += len(sentence)
    return "".join(out)[:chars]


def _model():
    """(LoadedModel, label): the zoo's default model, or a tiny in-memory GPT-2 with a BPE."""
    from lab.core import models

    if "bard-gpt" in models.zoo_models():
        return models.load("zoo:bard-gpt"), "zoo:bard-gpt"
    from lab.bench import tiny_models

    fast = tiny_models.byte_bpe_tokenizer([sample_text(200_000, seed=1)], 4096)
    model = tiny_models.model("gpt2", fast, n_positions=512, n_embd=64, n_layer=1, n_head=2)
    card = models.describe(model, fast, ref="bench-bpe", path=__import__("pathlib").Path("."), source="bench",
                           kind=models.KIND_DECODER, device="cpu", dtype="fp32", notes=[])
    return models.LoadedModel(model=model, tokenizer=fast, card=card, device="cpu", dtype="fp32"), "in-memory BPE"


def bench_panel(quick: bool) -> list[Figure]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from lab.core import embeddings, tokens
    from lab.ui.app import application
    from lab.ui.panels.tokens import EMBED_ROWS, TokensPanel
    from lab.ui.session import Session

    app = application()
    lm, label = _model()
    text = sample_text()
    session = Session()
    session.card = lm.card                     # the panel reads the card; the model stays here
    panel = TokensPanel(session)
    panel.resize(460, 800)
    panel.show()
    app.processEvents()
    tok = lm.tokenizer
    repeat = 5 if quick else 15
    n_tokens = [0]

    def lab_path():
        tz = tokens.tokenize(tok, text, model=lm.card.name)
        n = min(tz.count, EMBED_ROWS)
        rows = embeddings.rows(lm, tz.ids[:n], [tz.label(i, True) for i in range(n)])
        panel._tokenized((tz, rows, True))
        panel.repaint()
        n_tokens[0] = tz.count

    def baseline():
        tok(text, return_offsets_mapping=True)

    try:
        lab_ms = time_ms(lab_path, repeat=repeat, warmup=2)
        base_ms = time_ms(baseline, repeat=repeat, warmup=1)
        core_ms = time_ms(lambda: tokens.tokenize(tok, text), repeat=repeat, warmup=1)
    finally:
        panel.close()
        session.shutdown()
        panel.deleteLater()
        app.processEvents()
    return [
        Figure(name=f"tokenise + redraw {TEXT_CHARS:,} characters ({n_tokens[0]:,} tokens, {label}, panel)",
               value=lab_ms, unit="ms", baseline=base_ms, baseline_name="tokenizer call with offsets",
               target="< 150 ms", ok=lab_ms < 150),
        Figure(name=f"core tokenize() of {TEXT_CHARS:,} characters (no drawing)", value=core_ms, unit="ms",
               baseline=base_ms, baseline_name="tokenizer call with offsets"),
    ]


def bench_neighbours(quick: bool) -> list[Figure]:
    import numpy as np

    from lab.core.embeddings import NeighbourIndex

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((VOCAB, DIM), dtype=np.float32)
    repeat = 10 if quick else 40
    import time

    t = time.perf_counter()
    idx = NeighbourIndex.from_matrix(matrix)
    build_ms = (time.perf_counter() - t) * 1000
    queries = [int(q) for q in rng.integers(0, VOCAB, size=repeat + 2)]
    it = iter(queries * 3)

    def lab():
        q = next(it)
        idx.search(idx.matrix[q], 10, exclude=(q,))

    def base():
        q = next(it)
        matrix @ matrix[q]

    lab_ms = time_ms(lab, repeat=repeat, warmup=2)
    base_ms = time_ms(base, repeat=repeat, warmup=2)
    return [
        Figure(name=f"nearest neighbours, top 10 of {VOCAB:,} x {DIM} (cosine)", value=lab_ms, unit="ms",
               baseline=base_ms, baseline_name="plain numpy matrix-vector product", target="< 50 ms",
               ok=lab_ms < 50),
        Figure(name="normalise the matrix once per model (cached)", value=build_ms, unit="ms"),
    ]


def run(device: str, quick: bool) -> list[Figure]:
    return bench_panel(quick) + bench_neighbours(quick)
