"""Context changes meaning: one word's hidden state, layer by layer, in two sentences."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lab.core import tokens as core_tokens
from lab.core.errors import InputError
from lab.core.jobs import Job

BANK_PRESET = ("I sat on the river bank", "bank", "I deposited cash at the bank", "bank")


@dataclass
class ContextSimilarity:
    layers: list[str]               # "embeddings", "layer 1", ...
    cosine: np.ndarray              # [layer + 1]
    text_a: str
    text_b: str
    word_a: str
    word_b: str
    tokens_a: list[str]             # the pieces that make up the word in each sentence
    tokens_b: list[str]
    positions_a: list[int]
    positions_b: list[int]
    note: str = ""
    token_cosine: float = float("nan")   # the same comparison on the token embedding rows alone
    layer0: str = ""                     # what the "embeddings" point compares, in words
    position_added: bool = False         # the embeddings point holds a position's row too

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "cosine", "sentence_a", "sentence_b", "token_embedding_only_cosine"])
        for i, (lab, c) in enumerate(zip(self.layers, self.cosine)):
            first = i == 0
            w.writerow([lab, f"{c:.6f}", self.text_a if first else "", self.text_b if first else "",
                        f"{self.token_cosine:.6f}" if first else ""])
        return buf.getvalue()


def word_span(text: str, word: str) -> tuple[int, int]:
    """Character span of ``word`` in ``text``: whole-word match first, case-insensitive."""
    word = (word or "").strip()
    if not word:
        raise InputError("Choose a word to follow (for example: bank).")
    m = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, flags=re.IGNORECASE)
    if m is None:
        m = re.search(re.escape(word), text, flags=re.IGNORECASE)
    if m is None:
        raise InputError(f"{word!r} does not occur in {text!r}.")
    return m.start(), m.end()


def word_tokens(tz: core_tokens.Tokenization, word: str) -> list[int]:
    s, e = word_span(tz.text, word)
    out = [i for i in range(tz.count) if not tz.special[i] and tz.starts[i] < e and tz.ends[i] > s]
    if not out:
        raise InputError(f"No token of {tz.model or 'the model'} covers {word!r} in {tz.text!r}.")
    return out


def hidden_states(lm, text: str, job: Optional[Job] = None) -> tuple[core_tokens.Tokenization, np.ndarray]:
    """Tokens and hidden states ``[layer + 1, position, dim]`` (the encoder's for seq2seq)."""
    import torch

    from lab.core.models import KIND_SEQ2SEQ, device_errors

    job = Job.ensure(job)
    if not text or not text.strip():
        raise InputError("Both sentences need some text.")
    tz = core_tokens.tokenize(lm.tokenizer, text, model=lm.card.name)
    limit = lm.card.context
    if limit and tz.count > limit:
        raise InputError(f"The sentence is {tz.count} tokens but {lm.card.name} reads at most {limit}.")
    ids = torch.tensor([tz.ids], device=lm.device)
    mask = torch.ones_like(ids)
    with torch.inference_mode(), device_errors(lm.device):
        if lm.kind == KIND_SEQ2SEQ:
            out = lm.model.get_encoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        else:
            out = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        hs = out.hidden_states
        stacked = torch.stack([h[0] for h in hs]).float().cpu().numpy()
    return tz, stacked


def context_similarity(lm, text_a: str, word_a: str, text_b: str, word_b: Optional[str] = None,
                       job: Optional[Job] = None) -> ContextSimilarity:
    """Cosine similarity of a word's hidden state in two sentences, at every layer.

    A word cut into several tokens is represented by the mean of its tokens' states. The
    "embeddings" point is what the first layer reads: in models with a position table that is
    the token's row plus its position's row, so identical words at different positions start
    below 1; ``token_cosine`` compares the token rows alone.
    """
    from lab.core.embeddings.matrices import rows
    from lab.core.embeddings.positions import learned_position_table

    job = Job.ensure(job)
    word_b = word_b or word_a
    job.progress(0.05, "sentence A")
    tz_a, h_a = hidden_states(lm, text_a, job)
    pa = word_tokens(tz_a, word_a)
    job.progress(0.5, "sentence B")
    tz_b, h_b = hidden_states(lm, text_b, job)
    pb = word_tokens(tz_b, word_b)
    va = h_a[:, pa, :].mean(axis=1)
    vb = h_b[:, pb, :].mean(axis=1)
    cos = _cosine(va, vb)
    ta = rows(lm, [tz_a.ids[i] for i in pa]).vectors.mean(axis=0, keepdims=True)
    tb = rows(lm, [tz_b.ids[i] for i in pb]).vectors.mean(axis=0, keepdims=True)
    table = learned_position_table(lm.model)
    where = f"position {_positions(pa)} in A, {_positions(pb)} in B"
    if table is not None:
        layer0 = f"the token embedding plus its position's row of the table {table} ({where})"
    else:
        layer0 = f"the token embedding alone (this model adds no position to it; {where})"
    layers = ["embeddings"] + [f"layer {i}" for i in range(1, h_a.shape[0])]
    note = ""
    if len(pa) > 1 or len(pb) > 1:
        note = "The word is cut into several tokens; the mean of their hidden states is compared."
    job.progress(1.0, "done")
    return ContextSimilarity(layers=layers, cosine=cos.astype(np.float32), text_a=text_a, text_b=text_b,
                             word_a=word_a, word_b=word_b,
                             tokens_a=[tz_a.label(i, True) for i in pa], tokens_b=[tz_b.label(i, True) for i in pb],
                             positions_a=pa, positions_b=pb, note=note,
                             token_cosine=float(_cosine(ta, tb)[0]), layer0=layer0, position_added=table is not None)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [n, dim] arrays."""
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _positions(ps: list[int]) -> str:
    return str(ps[0]) if len(ps) == 1 else f"{ps[0]}-{ps[-1]}"
