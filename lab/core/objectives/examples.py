"""The training example each pre-training objective makes from one text.

Built from token ids and the model's own tokenizer, with no weights: a causal-LM pair
(inputs and labels shifted by one), a masked-LM example (BERT's recipe: 15 % of the
ordinary tokens chosen; of those 80 % replaced by the mask token, 10 % by a random
token, 10 % kept) and a span-corruption pair (T5's ``random_spans_noise_mask``: noise
density 0.15, mean span length 3, one sentinel per span in the input and the target).

Each example is a grid of aligned rows for the view plus the flat sequences a trainer
would feed (``input_ids``, ``labels``; ``IGNORE`` marks a label the loss skips). A
tokenizer without a mask token or sentinel tokens gets named placeholders (``id`` None),
and the example's notes say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from lab.core import tokens as core_tokens
from lab.core.errors import InputError

IGNORE = -100                 # the label value transformers' losses skip
MASK_RATE = 0.15
MASK_SPLIT = (0.8, 0.1, 0.1)  # replace with the mask token / a random token / keep
NOISE_DENSITY = 0.15
MEAN_SPAN = 3.0

CAUSAL, MASKED, SPAN = "causal", "masked", "span"
TITLES = {CAUSAL: "Causal LM (decoder: predict the next token)",
          MASKED: "Masked LM (encoder: predict the hidden tokens)",
          SPAN: "Span corruption (encoder-decoder: write the missing spans)"}


@dataclass(frozen=True)
class Cell:
    """One token of a row: what is shown, its id (None for a placeholder or a gap) and its
    role: "" ordinary, "special", "chosen", "mask", "random", "keep", "ignored", "sentinel",
    "noise", "gap"."""

    text: str
    id: Optional[int]
    role: str = ""

    def to_json(self) -> dict:
        return {"text": self.text, "id": self.id, "role": self.role}


@dataclass(frozen=True)
class Row:
    name: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Example:
    objective: str
    rows: tuple[Row, ...]
    input_ids: tuple[Optional[int], ...]      # None where a placeholder stands
    labels: tuple[Optional[int], ...]         # IGNORE where the loss skips a position
    input_tokens: tuple[str, ...]
    label_tokens: tuple[str, ...]
    notes: tuple[str, ...] = ()
    stats: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.objective]

    @property
    def columns(self) -> int:
        return max((len(r.cells) for r in self.rows), default=0)

    def to_json(self) -> dict:
        return {"objective": self.objective, "title": self.title,
                "input_ids": list(self.input_ids), "labels": list(self.labels),
                "input_tokens": list(self.input_tokens), "label_tokens": list(self.label_tokens),
                "rows": [{"name": r.name, "cells": [c.to_json() for c in r.cells]} for r in self.rows],
                "notes": list(self.notes), "stats": dict(self.stats)}


class Labeller:
    """Readable labels of token ids under one tokenizer (bytes decoded, spaces as ␣)."""

    def __init__(self, tok):
        self.tok = tok
        family = core_tokens.tokenizer_info(tok).family
        self.byte_level = family == core_tokens.FAMILY_BYTE_BPE
        self.metaspace = family == core_tokens.FAMILY_SENTENCEPIECE
        self.specials = set(getattr(tok, "all_special_ids", []) or [])

    def __call__(self, tid: Optional[int]) -> str:
        if tid is None:
            return ""
        piece = self.tok.convert_ids_to_tokens(int(tid))
        if tid in self.specials or not piece:
            return piece or f"<id {tid}>"
        if self.metaspace:
            return core_tokens.visible(piece.replace("▁", " "))
        if not self.byte_level:
            return piece
        text = self.tok.decode([int(tid)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return core_tokens.visible(text) if text else (piece or f"<id {tid}>")


# --- causal LM ------------------------------------------------------------------------------

def causal_example(ids: Sequence[int], label: Labeller) -> Example:
    """Inputs are the tokens but the last; labels the tokens but the first (shifted by one)."""
    if len(ids) < 2:
        raise InputError("A causal-LM example needs at least two tokens: type a longer text.")
    inputs, labels = list(ids[:-1]), list(ids[1:])
    role = (lambda t: "special" if t in label.specials else "")
    rows = (Row("input", tuple(Cell(label(t), t, role(t)) for t in inputs)),
            Row("label (next token)", tuple(Cell(label(t), t, role(t)) for t in labels)))
    return Example(CAUSAL, rows, tuple(inputs), tuple(labels), tuple(label(t) for t in inputs),
                   tuple(label(t) for t in labels),
                   notes=("Every position is a training example: the model reads the tokens up to "
                          "here and is scored on the next one.",),
                   stats={"predictions": len(labels)})


# --- masked LM ------------------------------------------------------------------------------

def mask_choice(special: Sequence[bool], rng: np.random.Generator) -> tuple[list[int], list[str]]:
    """BERT's choice: round(15 %) of the ordinary positions (at least one), each then
    replaced ("mask", 80 %), randomised ("random", 10 %) or kept ("keep", 10 %)."""
    candidates = [i for i, s in enumerate(special) if not s]
    if not candidates:
        raise InputError("The text has no ordinary tokens to mask.")
    n = max(1, int(round(len(candidates) * MASK_RATE)))
    chosen = sorted(int(i) for i in rng.choice(candidates, size=n, replace=False))
    draws = rng.random(n)
    how = ["mask" if u < MASK_SPLIT[0] else "random" if u < MASK_SPLIT[0] + MASK_SPLIT[1] else "keep"
           for u in draws]
    return chosen, how


def masked_example(ids: Sequence[int], special: Sequence[bool], tok, label: Labeller, seed: int = 0) -> Example:
    """The masked-LM example for ``ids``; random replacements are ordinary tokens of the
    vocabulary (never a special token); the labels are the original ids at the chosen
    positions and ``IGNORE`` elsewhere."""
    rng = np.random.default_rng(seed)
    chosen, how = mask_choice(special, rng)
    notes = []
    mask_id = getattr(tok, "mask_token_id", None)
    mask_text = tok.mask_token if mask_id is not None else "[MASK]"
    if mask_id is None:
        notes.append("This tokenizer has no mask token, so [MASK] here is a named placeholder: the model was "
                     "never trained to fill it in.")
    vocab = len(tok)
    ordinary = np.setdiff1d(np.arange(vocab), np.fromiter(label.specials, dtype=np.int64, count=len(label.specials)))
    inputs: list[Optional[int]] = list(ids)
    labels = [IGNORE] * len(ids)
    roles = {}
    for i, h in zip(chosen, how):
        labels[i] = int(ids[i])
        roles[i] = h
        if h == "mask":
            inputs[i] = mask_id
        elif h == "random":
            inputs[i] = int(rng.choice(ordinary))
    text_row = tuple(Cell(label(t), t, "chosen" if i in roles else ("special" if special[i] else ""))
                     for i, t in enumerate(ids))
    input_row = tuple(Cell(mask_text if (roles.get(i) == "mask" and mask_id is None) else label(t), t,
                           roles.get(i, "special" if special[i] else ""))
                      for i, t in enumerate(inputs))
    label_row = tuple(Cell(label(ids[i]), int(ids[i]), "label") if i in roles else Cell("", None, "ignored")
                      for i in range(len(ids)))
    counts = {h: how.count(h) for h in ("mask", "random", "keep")}
    return Example(MASKED, (Row("text", text_row), Row("input", input_row), Row("label", label_row)),
                   tuple(inputs), tuple(labels), tuple(c.text for c in input_row),
                   tuple(label(ids[i]) if i in roles else "" for i in range(len(ids))), tuple(notes),
                   stats={"seed": seed, "candidates": sum(1 for s in special if not s), "chosen": len(chosen),
                          **counts})


# --- span corruption --------------------------------------------------------------------------

def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``num_items`` into ``num_segments`` non-empty runs at random (lengths)."""
    first = np.arange(num_items - 1) < (num_segments - 1)
    rng.shuffle(first)
    segment_id = np.cumsum(np.pad(first, [[1, 0]]))
    return np.unique(segment_id, return_counts=True)[1]


def random_spans_noise_mask(length: int, rng: np.random.Generator, noise_density: float = NOISE_DENSITY,
                            mean_noise_span_length: float = MEAN_SPAN) -> np.ndarray:
    """T5's noise mask (``t5.data.preprocessors.random_spans_noise_mask``): round(length x
    density) noise tokens in round(noise / mean span) spans, noise and non-noise runs
    interleaved, always starting with non-noise. Needs ``length >= 2``."""
    if length < 2:
        raise InputError("Span corruption needs at least two tokens of text.")
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    num_nonnoise = length - num_noise
    num_spans = min(num_spans, num_nonnoise)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    nonnoise_lengths = _random_segmentation(num_nonnoise, num_spans, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    starts = np.cumsum(interleaved)[:-1]
    indicator = np.zeros(length, dtype=np.int64)
    indicator[starts] = 1
    return np.cumsum(indicator) % 2 == 1


def sentinels(tok, count: int) -> tuple[list[Optional[int]], bool]:
    """The ids of ``<extra_id_0>``, ``<extra_id_1>``… in ``tok`` (None where missing) and
    whether all of them are real tokens."""
    vocab = tok.get_vocab()
    ids = [vocab.get(f"<extra_id_{k}>") for k in range(count)]
    return ids, all(i is not None for i in ids)


def span_example(ids: Sequence[int], special: Sequence[bool], tok, label: Labeller, seed: int = 0) -> Example:
    """T5's span-corruption pair over the ordinary tokens of ``ids`` (special tokens stay
    where they are in the input; the target ends with a final sentinel and the tokenizer's
    end-of-sequence token when it has one)."""
    text_pos = [i for i, s in enumerate(special) if not s]
    noise = random_spans_noise_mask(len(text_pos), np.random.default_rng(seed))
    is_noise = np.zeros(len(ids), dtype=bool)
    is_noise[np.asarray(text_pos, dtype=np.int64)] = noise
    spans: list[list[int]] = []
    for i in range(len(ids)):
        if is_noise[i]:
            if i > 0 and is_noise[i - 1]:
                spans[-1].append(i)
            else:
                spans.append([i])
    sent_ids, real = sentinels(tok, len(spans) + 1)
    sent_text = [f"<extra_id_{k}>" for k in range(len(spans) + 1)]
    notes = []
    if not real:
        notes.append("This tokenizer has no sentinel tokens, so <extra_id_0>, <extra_id_1>… here are named "
                     "placeholders, not tokens of its vocabulary: the model never saw span corruption in training "
                     "(T5 reserves 100 sentinels at the top of its vocabulary).")
    starts = {s[0]: k for k, s in enumerate(spans)}
    inputs: list[Cell] = []           # the flat sequences, as cells (placeholders keep their names)
    targets: list[Cell] = []
    text_row, in_row, tgt_row = [], [], []
    gap = Cell("", None, "gap")

    def column(text_cell: Cell, in_cell: Cell, tgt_cell: Cell) -> None:
        text_row.append(text_cell)
        in_row.append(in_cell)
        tgt_row.append(tgt_cell)
        inputs.extend([in_cell] if in_cell is not gap else [])
        targets.extend([tgt_cell] if tgt_cell is not gap else [])

    for i, t in enumerate(ids):
        if i in starts:
            k = starts[i]
            sc = Cell(sent_text[k], sent_ids[k], "sentinel")
            column(gap, sc, sc)
        cell = Cell(label(t), int(t), "noise" if is_noise[i] else ("special" if special[i] else ""))
        if is_noise[i]:
            column(cell, gap, cell)
        else:
            column(cell, cell, gap)
    column(gap, gap, Cell(sent_text[-1], sent_ids[-1], "sentinel"))
    eos = getattr(tok, "eos_token_id", None)
    if eos is not None:
        column(gap, gap, Cell(label(eos), int(eos), "special"))
    lengths = [len(s) for s in spans]
    return Example(SPAN, (Row("text", tuple(text_row)), Row("input", tuple(in_row)), Row("target", tuple(tgt_row))),
                   tuple(c.id for c in inputs), tuple(c.id for c in targets), tuple(c.text for c in inputs),
                   tuple(c.text for c in targets), tuple(notes),
                   stats={"seed": seed, "text_tokens": len(text_pos), "noise_tokens": int(is_noise.sum()),
                          "spans": len(spans), "density": float(is_noise.sum()) / len(text_pos),
                          "mean_span": float(np.mean(lengths)), "sentinels": "real" if real else "placeholders"})


def build(ids: Sequence[int], special: Sequence[bool], tok, seed: int = 0) -> tuple[Example, ...]:
    """The three examples of one tokenized text (``special`` marks the tokenizer's own tokens)."""
    label = Labeller(tok)
    return (causal_example(ids, label), masked_example(ids, special, tok, label, seed),
            span_example(ids, special, tok, label, seed))
