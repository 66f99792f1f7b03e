"""Ablation: knock out heads, attention blocks or MLP blocks and see the prediction move.

``ablate`` runs the text twice in one batch (as is, and with the ablation) and compares
the readout: top-k before and after with deltas, KL(before ‖ after) and the change in the
target token's log-probability (default target: the model's top-1). ``sweep`` ablates
each head alone, one batch element per head, in chunks that bound the memory, and returns
a layer × head map of the target's change. A head is ablated by a forward pre-hook on the
attention output projection that zeroes (or replaces by its mean over the positions) the
head's slice of the projection's input, which is the same as zeroing those input columns
of the projection's weight.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from lab.core.errors import InputError
from lab.core.interventions import sites
from lab.core.interventions.hooks import KINDS, Edit, forward, prepare
from lab.core.jobs import Job
from lab.core.models import LoadedModel

Head = tuple[str, int, int]          # (stack, layer, head)
Block = tuple[str, int]              # (stack, layer)

_STACK_ALIASES = {"enc": "encoder", "dec": "decoder", "x": "cross"}


def parse_heads(lm: LoadedModel, spec: str) -> list[Head]:
    """``"3.1,5.7"`` (layer.head) or ``"decoder:1.2"`` / ``"cross:0.3"`` → checked heads."""
    out: list[Head] = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        stack_name, _, lh = part.rpartition(":")
        m = re.fullmatch(r"(\d+)\.(\d+)", lh.strip())
        if not m:
            raise InputError(f"{part!r} is not a head: write LAYER.HEAD, e.g. 3.1 (or decoder:3.1).")
        out.append(check_head(lm, _STACK_ALIASES.get(stack_name, stack_name) or None, int(m[1]), int(m[2])))
    return out


def parse_blocks(lm: LoadedModel, spec: str, what: str) -> list[Block]:
    """``"2"``, ``"0,3"`` or ``"decoder:1"`` → checked (stack, layer) pairs."""
    out: list[Block] = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        stack_name, _, layer = part.rpartition(":")
        if not layer.strip().isdigit():
            raise InputError(f"{part!r} is not a layer number (e.g. 2, or decoder:2).")
        out.append(check_block(lm, _STACK_ALIASES.get(stack_name, stack_name) or None, int(layer), what))
    return out


def check_head(lm: LoadedModel, stack: Optional[str], layer: int, head: int) -> Head:
    st = sites.stack(lm, stack)
    if not 0 <= layer < st.layers:
        raise InputError(f"Layer {layer} is out of range: {lm.card.name}'s {st.name} stack has layers "
                         f"0-{st.layers - 1}.")
    if not 0 <= head < st.heads:
        raise InputError(f"Head {layer}.{head} is out of range: {lm.card.name} has heads 0-{st.heads - 1} "
                         f"in each layer of its {st.name} stack.")
    return (st.name, layer, head)


def check_block(lm: LoadedModel, stack: Optional[str], layer: int, what: str) -> Block:
    st = sites.stack(lm, stack)
    st.module(what, 0)                   # a cross stack has no MLP: say so
    if not 0 <= layer < st.layers:
        raise InputError(f"Layer {layer} is out of range: {lm.card.name}'s {st.name} stack has layers "
                         f"0-{st.layers - 1}.")
    return (st.name, layer)


@dataclass(frozen=True)
class Target:
    id: int
    piece: str
    note: str = ""


def resolve_target(lm: LoadedModel, text: Optional[str], logprobs: Optional[np.ndarray] = None) -> Target:
    """The token whose log-probability is followed: the first piece of ``text`` (saying so
    when it is several pieces), or the top-1 of ``logprobs`` when ``text`` is empty."""
    tok = lm.tokenizer
    if not text:
        if logprobs is None:
            raise InputError("No target token given.")
        i = int(np.argmax(logprobs))
        return Target(i, tok.convert_ids_to_tokens(i))
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise InputError(f"The target {text!r} gives no tokens under this tokenizer.")
    pieces = tok.convert_ids_to_tokens(ids)
    note = ""
    if len(ids) > 1:
        note = (f"The target {text!r} is {len(ids)} tokens ({' | '.join(pieces)}); its first piece "
                f"{pieces[0]!r} is used.")
    return Target(int(ids[0]), pieces[0], note)


@dataclass(frozen=True)
class Candidate:
    piece: str
    id: int
    before: float        # probability
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class AblationResult:
    model: str
    kind: str
    readout: str                         # "logits" or "embedding"
    tokens: list[str]
    position: int
    heads: list[Head]
    attn_blocks: list[Block]
    mlp_blocks: list[Block]
    target: Optional[Target]
    logp_before: float = 0.0
    logp_after: float = 0.0
    kl: float = 0.0
    top: list[Candidate] = field(default_factory=list)          # the top-k before, with after
    top_after: list[Candidate] = field(default_factory=list)    # the top-k after
    cosine_mean: float = 1.0             # embedding readout: cos(before, after)
    cosine_first: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def delta_logp(self) -> float:
        return self.logp_after - self.logp_before

    def to_dict(self) -> dict:
        d = asdict(self)
        d["delta_logp"] = self.delta_logp
        for key in ("top", "top_after"):
            for c, obj in zip(d[key], getattr(self, key)):
                c["delta"] = obj.delta
        return d


def _plan(heads: Sequence[Head], attn: Sequence[Block], mlp: Sequence[Block]) -> list[Edit]:
    return ([Edit("head", s, l, h) for s, l, h in heads] + [Edit("attn", s, l) for s, l in attn]
            + [Edit("mlp", s, l) for s, l in mlp])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den else 1.0


def ablate(lm: LoadedModel, text: str, *, heads: Sequence[Head] = (), attn: Sequence[Block] = (),
           mlp: Sequence[Block] = (), kind: str = "zero", target: Optional[str] = None, k: int = 10,
           decoder_text: Optional[str] = None, job: Optional[Job] = None) -> AblationResult:
    """Ablate ``heads`` and the attention / MLP blocks ``attn`` / ``mlp`` together; see the
    module docstring."""
    job = Job.ensure(job)
    if kind not in KINDS:
        raise InputError(f"Unknown ablation kind {kind!r}; choose zero or mean.")
    plan = _plan(heads, attn, mlp)
    if not plan:
        raise InputError("Nothing is selected to ablate: pick at least one head, attention block or MLP block.")
    prep = prepare(lm, text, decoder_text=decoder_text)
    job.progress(0.2, "running with and without the ablation")
    out = forward(lm, prep, [[], plan], kind=kind).cpu().numpy()
    job.progress(0.9, "comparing")
    base = dict(model=lm.card.name, kind=kind, readout=prep.readout, tokens=prep.tokens, position=prep.position,
                heads=list(heads), attn_blocks=list(attn), mlp_blocks=list(mlp))
    notes = list(prep.notes)
    if prep.readout == "embedding":
        if target:
            notes.append("This model predicts no tokens here, so the target was ignored.")
        return AblationResult(**base, target=None, cosine_mean=_cosine(out[0, 0], out[1, 0]),
                              cosine_first=_cosine(out[0, 1], out[1, 1]), notes=notes)
    before, after = out[0], out[1]
    tgt = resolve_target(lm, target, before)
    if tgt.note:
        notes.append(tgt.note)
    p, q = np.exp(before), np.exp(after)
    kl = float(np.sum(p * (before - after)))
    tok = lm.tokenizer

    def cands(order):
        ids = [int(i) for i in order[:k]]
        return [Candidate(tok.convert_ids_to_tokens(i), i, float(p[i]), float(q[i])) for i in ids]

    return AblationResult(**base, target=tgt, logp_before=float(before[tgt.id]), logp_after=float(after[tgt.id]),
                          kl=max(kl, 0.0), top=cands(np.argsort(-before)), top_after=cands(np.argsort(-after)),
                          notes=notes)


@dataclass(frozen=True)
class SweepResult:
    model: str
    kind: str
    readout: str
    tokens: list[str]
    target: Optional[Target]
    logp_before: float
    maps: dict                  # stack -> [layers, heads]: Δ log p of the target (or 1 - cosine)
    measure: str                # what the maps hold, in words
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["maps"] = {s: np.round(m, 6).tolist() for s, m in self.maps.items()}
        return d


def default_chunk(length: int, hidden: int) -> int:
    """Batch elements per chunk: about 2048 tokens per forward at a hidden size of 1024 or
    less, fewer for wider models, so memory stays bounded."""
    tokens = int(2048 * min(1.0, 1024 / max(1, hidden)))
    return max(1, min(64, tokens // max(1, length)))


def sweep(lm: LoadedModel, text: str, *, stacks: Optional[Sequence[str]] = None, kind: str = "zero",
          target: Optional[str] = None, decoder_text: Optional[str] = None, chunk: Optional[int] = None,
          job: Optional[Job] = None) -> SweepResult:
    """Ablate every head of ``stacks`` (default: all) alone; see the module docstring."""
    job = Job.ensure(job)
    if kind not in KINDS:
        raise InputError(f"Unknown ablation kind {kind!r}; choose zero or mean.")
    all_ = sites.stacks(lm)
    names = list(stacks) if stacks else list(all_)
    for s in names:
        sites.stack(lm, s)
    prep = prepare(lm, text, decoder_text=decoder_text)
    heads = [(s, layer, h) for s in names for layer in range(all_[s].layers) for h in range(all_[s].heads)]
    chunk = int(chunk or default_chunk(prep.length, int(lm.card.hidden or 64)))
    job.progress(0.0, f"ablating {len(heads)} heads")
    base = forward(lm, prep, [[]]).cpu().numpy()[0]
    notes = list(prep.notes)
    tgt = None
    if prep.readout == "logits":
        tgt = resolve_target(lm, target, base)
        if tgt.note:
            notes.append(tgt.note)
    values = np.zeros(len(heads), np.float64)
    for start in range(0, len(heads), chunk):
        job.check()
        part = heads[start:start + chunk]
        out = forward(lm, prep, [[Edit("head", *h)] for h in part], kind=kind).cpu().numpy()
        if tgt is not None:
            values[start:start + len(part)] = out[:, tgt.id] - base[tgt.id]
        else:
            values[start:start + len(part)] = [1.0 - _cosine(base[0], o[0]) for o in out]
        job.progress((start + len(part)) / len(heads), f"ablated {start + len(part)} of {len(heads)} heads")
    maps, i = {}, 0
    for s in names:
        n = all_[s].layers * all_[s].heads
        maps[s] = values[i:i + n].reshape(all_[s].layers, all_[s].heads)
        i += n
    measure = ("change in log-probability of the target" if tgt is not None
               else "1 - cosine of the mean embedding, before vs after")
    return SweepResult(lm.card.name, kind, prep.readout, prep.tokens, tgt,
                       float(base[tgt.id]) if tgt is not None else 0.0, maps, measure, notes)
