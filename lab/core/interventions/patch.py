"""Activation patching (causal tracing): where does the clean answer live?

Two prompts of equal token length, clean and corrupted, and two answer tokens. The clean
run's activations at one site (the residual stream entering a layer, the attention
block's output or the MLP block's output) are recorded; then, for every layer × position,
the corrupted run is repeated with that one activation copied from the clean run, one
batch element per (layer, position), and the logit difference answer − wrong is read at
the prediction position. Normalised, 0 is the corrupted run and 1 the clean one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.interventions import sites
from lab.core.interventions.ablate import Target, default_chunk, resolve_target
from lab.core.interventions.hooks import Edit, Prepared, forward, prepare, record
from lab.core.jobs import Job
from lab.core.models import KIND_SEQ2SEQ, LoadedModel


@dataclass(frozen=True)
class PatchResult:
    model: str
    site: str
    stack: str
    clean_tokens: list[str]
    corrupt_tokens: list[str]
    answer: Target
    wrong: Target
    ld_clean: float                  # logit difference answer - wrong, clean run
    ld_corrupt: float
    map: np.ndarray                  # [layers, positions], 0 = corrupted, 1 = clean
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["map"] = np.round(self.map, 6).tolist()
        d["site_label"] = sites.SITE_LABELS[self.site]
        return d


def _trim(prep: Prepared, n: int) -> tuple[Prepared, str]:
    """Keep the last ``n`` tokens of ``prep``; returns the trimmed input and what was dropped."""
    drop = prep.length - n
    if drop <= 0:
        return prep, ""
    inputs = dict(prep.inputs)
    for key in ("input_ids", "attention_mask"):
        inputs[key] = inputs[key][:, drop:]
    position = prep.position - drop if prep.decoder_tokens == [] else prep.position
    if position < 0:
        raise InputError("Aligning on the shorter prompt would cut off the token the prediction is read at.")
    dropped = "".join(prep.tokens[:drop])
    return Prepared(prep.readout, inputs, position, prep.ids[drop:], prep.tokens[drop:],
                    prep.decoder_tokens, list(prep.notes)), dropped


def patch(lm: LoadedModel, clean: str, corrupt: str, answer: str, wrong: str, *, site: str = "resid",
          align: bool = False, decoder_text: Optional[str] = None, chunk: Optional[int] = None,
          job: Optional[Job] = None) -> PatchResult:
    """Patch every layer × position of ``site`` from ``clean`` into ``corrupt``; see the module
    docstring. ``align`` keeps the last tokens of the longer prompt when the lengths differ."""
    job = Job.ensure(job)
    if site not in sites.SITES:
        raise InputError(f"Unknown site {site!r}; choose one of {', '.join(sites.SITES)}.")
    if not answer or not wrong:
        raise InputError("Give both answer tokens: the clean prompt's answer and the corrupted prompt's.")
    st = sites.stack(lm, None)
    st.module(site, 0)
    dec_ids = None
    if lm.kind == KIND_SEQ2SEQ:
        start = lm.model.config.decoder_start_token_id
        start = int(start if start is not None else (lm.tokenizer.pad_token_id or 0))
        extra = list(lm.tokenizer(text_target=decoder_text, add_special_tokens=False)["input_ids"]) \
            if decoder_text else []
        dec_ids = [start] + extra
    pc = prepare(lm, clean, decoder_ids=dec_ids)
    px = prepare(lm, corrupt, decoder_ids=dec_ids)
    if pc.readout != "logits":
        raise InputError(f"{lm.card.name} predicts no token here (put a mask token in both prompts, or use "
                         "a language model), so there is no logit difference to restore.")
    notes = list(pc.notes)
    if pc.length != px.length:
        n = min(pc.length, px.length)
        if not align:
            raise InputError(
                f"The clean prompt is {pc.length} tokens and the corrupted one {px.length}: patching needs "
                f"the same positions in both. Make them equal, or align on the shorter ({n} tokens, "
                "keeping the end of each; --align in the CLI).")
        which, longer = ("clean", pc.length) if pc.length > px.length else ("corrupted", px.length)
        pc, dc = _trim(pc, n)
        px, dx = _trim(px, n)
        notes.append(f"Aligned on the shorter prompt: the first {longer - n} token(s) {dc or dx!r} of the "
                     f"{which} prompt were left out.")
    if pc.position != px.position:
        raise InputError("The prediction is read at different positions in the two prompts (the mask token "
                         "moved); put it at the same place in both.")
    a = resolve_target(lm, answer)
    w = resolve_target(lm, wrong)
    notes += [t.note for t in (a, w) if t.note]
    if a.id == w.id:
        raise InputError(f"The answer and the wrong token are the same token ({a.piece!r}); give two different ones.")
    job.progress(0.05, "clean and corrupted runs")
    cache = record(lm, pc, st.name, site)
    ends = forward(lm, pc, [[]]).cpu().numpy()[0], forward(lm, px, [[]]).cpu().numpy()[0]
    ld_clean = float(ends[0][a.id] - ends[0][w.id])
    ld_corrupt = float(ends[1][a.id] - ends[1][w.id])
    span = ld_clean - ld_corrupt
    if abs(span) < 1e-6:
        raise InputError(f"The clean and corrupted prompts give the same logit difference for {a.piece!r} vs "
                         f"{w.piece!r}, so there is nothing to restore: choose prompts the model tells apart.")
    if ld_clean <= 0:
        notes.append(f"On the clean prompt the model prefers {w.piece!r} to {a.piece!r}; the map still "
                     "measures the move from corrupted to clean.")
    T = px.length
    items = [(layer, pos) for layer in range(st.layers) for pos in range(T)]
    chunk = int(chunk or default_chunk(T, int(lm.card.hidden or 64)))
    values = np.zeros(len(items), np.float64)
    for s in range(0, len(items), chunk):
        job.check()
        part = items[s:s + chunk]
        plans = [[Edit("patch", st.name, layer, site=site, position=pos)] for layer, pos in part]
        out = forward(lm, px, plans, cache=cache).cpu().numpy()
        values[s:s + len(part)] = ((out[:, a.id] - out[:, w.id]) - ld_corrupt) / span
        job.progress(0.05 + 0.95 * (s + len(part)) / len(items), f"patched {s + len(part)} of {len(items)}")
    return PatchResult(lm.card.name, site, st.name, pc.tokens, px.tokens, a, w, ld_clean, ld_corrupt,
                       values.reshape(st.layers, T), notes)
