"""One text under the loaded model: the three objectives' examples and the model's own
per-token loss, as the objectives view and ``tvlab objectives`` show them."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Optional

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors
from lab.core.objectives import examples as ex
from lab.core.objectives import losses
from lab.core.trace.forward import encode

MAX_GREEDY_TOKENS = 64
OWN_OBJECTIVE = {KIND_DECODER: ex.CAUSAL, KIND_ENCODER: ex.MASKED, KIND_SEQ2SEQ: ex.SPAN}


@dataclass(frozen=True)
class Report:
    model: str
    kind: str
    text: str
    target: str                         # the scored target text (encoder-decoder models)
    target_source: str                  # "given", "greedy" (the model's own output) or ""
    source_tokens: tuple[str, ...]      # the input tokens (what the loss strip is conditioned on)
    examples: tuple[ex.Example, ...]
    loss: losses.LossStrip
    notes: tuple[str, ...] = ()

    @property
    def own_objective(self) -> str:
        """The objective this kind of model is usually trained with."""
        return OWN_OBJECTIVE.get(self.kind, ex.MASKED)

    def example(self, objective: str) -> ex.Example:
        return next(e for e in self.examples if e.objective == objective)

    def to_json(self) -> dict:
        return {"model": self.model, "kind": self.kind, "text": self.text, "target": self.target,
                "target_source": self.target_source, "own_objective": self.own_objective,
                "examples": [e.to_json() for e in self.examples], "loss": self.loss.to_json(),
                "notes": list(self.notes)}

    def csv_text(self) -> str:
        """The per-token losses, one row per token."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "id", "token", "nats", "bits", "probability", "rank", "top"])
        for t in self.loss.tokens:
            w.writerow([t.index, t.id, t.text, "" if t.nats is None else f"{t.nats:.6f}",
                        "" if t.bits is None else f"{t.bits:.6f}",
                        "" if t.probability is None else f"{t.probability:.6f}", t.rank or "",
                        " ".join(f"{s}={p:.4f}" for s, p in t.top)])
        return buf.getvalue()


def _target_ids(lm: LoadedModel, source: list[int], target: str) -> tuple[list[int], str, list[str]]:
    """The target's ids (the given text, or the model's greedy output when none is given)."""
    import torch

    tok = lm.tokenizer
    notes: list[str] = []
    if target:
        ids = list(tok(text_target=target, add_special_tokens=True)["input_ids"])
        limit = lm.card.context
        if limit and len(ids) > limit:
            notes.append(f"The target is {len(ids)} tokens; only the first {limit} were scored.")
            ids = ids[:limit]
        return ids, "given", notes
    src = torch.tensor([source], device=lm.device)
    with torch.inference_mode(), device_errors(lm.device):
        out = lm.model.generate(input_ids=src, attention_mask=torch.ones_like(src),
                                max_new_tokens=MAX_GREEDY_TOKENS, do_sample=False)[0].tolist()
    start = lm.model.config.decoder_start_token_id
    ids = out[1:] if out and out[0] == start else out
    notes.append("No target was given, so the loss is the model's own greedy output scored: type a target "
                 "to see how surprising another answer is.")
    return [int(i) for i in ids], "greedy", notes


def analyse(lm: LoadedModel, text: str, target: Optional[str] = None, *, seed: int = 0,
            top_k: int = losses.TOP_K, job: Optional[Job] = None) -> Report:
    """Build the three examples from ``text`` with the model's tokenizer and score the text
    (encoder-decoder models: ``target`` given the text) with the model's own objective."""
    job = Job.ensure(job)
    if not text:
        raise InputError("The text is empty: type some text first.")
    if not isinstance(seed, int) or seed < 0:
        raise InputError("The seed must be a whole number from 0.")
    enc, warnings = encode(lm, text)
    ids, special = enc["ids"], enc["special"]
    if not ids:
        raise InputError("The text gives no tokens under this tokenizer.")
    notes = list(warnings)
    job.progress(0.05, "building the examples")
    examples = ex.build(ids, special, lm.tokenizer, seed)
    tgt_text, tgt_source = "", ""
    if target and lm.kind != KIND_SEQ2SEQ:
        notes.append(f"A target only applies to encoder-decoder models; {lm.card.name} is {lm.kind}, "
                     "so it was ignored.")
    if lm.kind == KIND_SEQ2SEQ:
        tgt_ids, tgt_source, more = _target_ids(lm, ids, target or "")
        notes += more
        tgt_text = target or lm.tokenizer.decode(tgt_ids, skip_special_tokens=True)
        strip = losses.seq2seq(lm, ids, tgt_ids, top_k=top_k)
    elif lm.kind == KIND_DECODER:
        strip = losses.causal(lm, ids, top_k=top_k)
    else:
        strip = losses.pseudo_log_likelihood(lm, ids, special, top_k=top_k, job=job)
    job.progress(1.0, "done")
    label = ex.Labeller(lm.tokenizer)
    return Report(model=lm.card.name, kind=lm.kind, text=text, target=tgt_text, target_source=tgt_source,
                  source_tokens=tuple(label(t) for t in ids), examples=examples, loss=strip, notes=tuple(notes))
