"""The same prompt through the model at several precisions: next-token top-k side by side.

Each precision is a twin (``lab.core.precision.twins``); the first one given is the
reference (normally torch fp32). For every other twin: does its top-1 token agree with
the reference's, at the shown position and over all positions of the prompt, and the KL
divergence KL(reference || twin) of the next-token distributions, in nats.

The shown position: the last prompt token (decoder-only), the first [MASK] or else the
last ordinary token (encoder-only), the last decoder position (encoder-decoder: the
decoder reads its start token, then the target if one is given).
Runs torch: call it on the model worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_ENCODER, KIND_SEQ2SEQ
from lab.core.tokens import visible

TOP_K = 5


@dataclass(frozen=True)
class Candidate:
    token_id: int
    text: str          # the token as text, spaces and newlines made visible
    prob: float


@dataclass(frozen=True)
class PrecisionPrediction:
    label: str                         # "torch fp16", "int8 (ONNX)"
    spec: str
    top: tuple = ()                    # Candidates, most likely first
    top1_agrees: Optional[bool] = None     # with the reference at the shown position
    agreement: Optional[float] = None      # fraction of all positions whose top-1 agrees
    kl: Optional[float] = None             # KL(reference || this) at the shown position, nats
    kl_mean: Optional[float] = None        # the same, averaged over all positions
    ref_top1_prob: Optional[float] = None  # this twin's probability of the reference's top-1
    max_abs_logprob_diff: Optional[float] = None   # largest |Δ log p| over positions and tokens
    note: str = ""
    error: str = ""                    # set when this precision could not run


@dataclass(frozen=True)
class NextTokenComparison:
    text: str
    kind: str
    position: int                      # the shown position in the logits
    context: str                       # the tokens read up to it, made visible
    rows: tuple = field(default_factory=tuple)

    @property
    def reference(self) -> PrecisionPrediction:
        return self.rows[0]


def prompt_ids(tokenizer, kind: str, text: str, target: str = "", decoder_start=None) -> tuple[list, Optional[list]]:
    """(input ids, decoder ids or None) for ``text`` as the lab's trace tokenizes it."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if not ids or not text.strip():
        raise InputError("The prompt is empty: type some text to compare the precisions on.")
    if kind != KIND_SEQ2SEQ:
        return ids, None
    dec = list(decoder_start or [0])
    if target:
        dec += [i for i in tokenizer(target, add_special_tokens=False)["input_ids"]]
    return ids, dec


def shown_position(tokenizer, kind: str, ids: list, dec: Optional[list]) -> int:
    if kind == KIND_SEQ2SEQ:
        return len(dec) - 1
    if kind == KIND_ENCODER:
        mask = getattr(tokenizer, "mask_token_id", None)
        if mask is not None and mask in ids:
            return ids.index(mask)
        specials = set(tokenizer.all_special_ids)
        ordinary = [i for i, t in enumerate(ids) if t not in specials]
        return ordinary[-1] if ordinary else len(ids) - 1
    return len(ids) - 1


def compare(twins: list, text: str, *, target: str = "", k: int = TOP_K,
            job: Optional[Job] = None) -> NextTokenComparison:
    """Run ``text`` through every twin (the first is the reference) and compare."""
    import torch

    job = Job.ensure(job)
    if not twins:
        raise InputError("No precision to compare.")
    ref_twin = twins[0]
    kind, tok = ref_twin.kind, ref_twin.tokenizer
    ids, dec = prompt_ids(tok, kind, text, target, ref_twin.decoder_start() if kind == KIND_SEQ2SEQ else None)
    pos = shown_position(tok, kind, ids, dec)
    read = (dec if kind == KIND_SEQ2SEQ else ids)[:pos + 1 if kind != KIND_ENCODER else len(ids)]
    context = visible(tok.decode(read))
    logs, rows = [], []
    for i, twin in enumerate(twins):
        job.progress(i / len(twins), f"running {twin.label}")
        job.check()
        try:
            lg = twin.logits(ids, dec)[0]
        except (InputError, RuntimeError, MemoryError) as err:
            if i == 0:
                raise
            logs.append(None)
            rows.append(PrecisionPrediction(label=twin.label, spec=twin.spec, note=twin.note,
                                            error=str(err).splitlines()[0]))
            continue
        logs.append(torch.log_softmax(lg.double(), -1))
        rows.append(None)
    ref = logs[0]
    ref_top1 = int(ref[pos].argmax())
    out = []
    for twin, lp, row in zip(twins, logs, rows):
        if row is not None:
            out.append(row)
            continue
        p = lp[pos].exp()
        probs, top_ids = p.topk(min(k, p.numel()))
        top = tuple(Candidate(int(t), _piece(tok, int(t)), float(q)) for t, q in zip(top_ids, probs))
        with torch.no_grad():
            kl_all = (ref.exp() * (ref - lp)).sum(-1).clamp_min(0.0)
        out.append(PrecisionPrediction(
            label=twin.label, spec=twin.spec, top=top, top1_agrees=int(lp[pos].argmax()) == ref_top1,
            agreement=float((lp.argmax(-1) == ref.argmax(-1)).double().mean()),
            kl=float(kl_all[pos]), kl_mean=float(kl_all.mean()), ref_top1_prob=float(p[ref_top1]),
            max_abs_logprob_diff=float((lp - ref).abs().max()) if twin is not ref_twin else 0.0, note=twin.note))
    job.progress(1.0, "compared")
    return NextTokenComparison(text=text, kind=kind, position=pos, context=context, rows=tuple(out))



def _piece(tok, token_id: int) -> str:
    """The token as text; a piece that decodes to nothing (a lone "▁") as the piece itself."""
    text = tok.decode([token_id])
    if not text:
        text = str(tok.convert_ids_to_tokens(token_id)).replace("\u2581", " ")
    return visible(text)
