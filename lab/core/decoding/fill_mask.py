"""Fill in the mask: the encoder-only twin of the step-through decode.

``FillMaskSession`` fills the masked positions of a masked LM one at a time (left to
right or most confident first); each fill is a step Back undoes. Bidirectional attention
means each fill re-reads the whole sentence (there is no KV cache to keep).
"""
from __future__ import annotations

from typing import Optional

import torch

from lab.core import sampling
from lab.core.decoding.snapshots import FillSnapshot, MaskView
from lab.core.decoding.views import N_CANDIDATES, build_view, make_generator, token_text
from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors
from lab.core.sampling import SamplingSettings

MASK_SPELLINGS = ("[MASK]", "<mask>")


class FillMaskSession:
    """Fill the mask tokens of an encoder-only masked-LM, one at a time; Back undoes a fill."""

    ORDERS = ("left-to-right", "most-confident")

    def __init__(self, lm: LoadedModel, prompt: str, settings: Optional[SamplingSettings] = None, *,
                 order: str = "left-to-right", job: Optional[Job] = None):
        job = Job.ensure(job)
        if lm.kind != KIND_ENCODER:
            raise InputError(f"{lm.card.name} is {lm.kind}: fill-in-the-mask needs an encoder-only masked-LM.")
        out_emb = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
        if out_emb is None:
            raise InputError(f"{lm.card.name} is an encoder without a language-model head, so it cannot "
                             "predict tokens for a mask.")
        tok = lm.tokenizer
        if getattr(tok, "mask_token_id", None) is None:
            raise InputError(f"{lm.card.name}'s tokenizer has no mask token, so there is nothing to fill in.")
        if order not in self.ORDERS:
            raise InputError(f"Unknown fill order {order!r}; choose left-to-right or most-confident.")
        self.lm, self.model, self.tokenizer = lm, lm.model, tok
        self.device = str(lm.device)
        self.settings = (settings or sampling.model_defaults(lm.model).settings).validated()
        self.order = order
        self.prompt = prompt or ""
        self.notes: list[str] = []
        ids = list(tok(prompt or "", add_special_tokens=True)["input_ids"])
        limit = lm.card.context
        if limit and len(ids) > limit:
            raise InputError(f"The text is {len(ids)} tokens; {lm.card.name} reads at most {limit}.")
        self.mask_id = int(tok.mask_token_id)
        self.positions = [i for i, t in enumerate(ids) if t == self.mask_id]
        if not self.positions:
            raise InputError(f"Put the mask token {tok.mask_token} where a word should be filled in "
                             f"(e.g. 'The cat sat on the {tok.mask_token}.').")
        self.original_ids = ids
        # history[i] = (ids, logits [T, vocab] float32, fill (position, token, how, rng_before) or None, rng_after)
        self._rng = make_generator(self.device, self.settings.seed).get_state()
        self.history: list[dict] = []
        self.forward_lengths: list[int] = []
        job.progress(0.2, "reading the sentence")
        self.history.append({"ids": ids, "logits": self._forward(ids), "fill": None, "rng_after": self._rng})
        job.progress(1.0, "ready")

    def _forward(self, ids: list[int]):
        with torch.inference_mode(), device_errors(self.device):
            x = torch.tensor([ids], device=self.device)
            self.forward_lengths.append(len(ids))
            out = self.model(input_ids=x, attention_mask=torch.ones_like(x), return_dict=True)
            return out.logits[0].to(torch.float32, copy=True)

    @property
    def ids(self) -> list[int]:
        return self.history[-1]["ids"]

    def unfilled(self) -> list[int]:
        return [p for p in self.positions if self.ids[p] == self.mask_id]

    @property
    def finished(self) -> bool:
        return not self.unfilled()

    def set_settings(self, settings: SamplingSettings, order: Optional[str] = None) -> None:
        settings = settings.validated()
        if settings.seed != self.settings.seed:
            self.history[-1]["rng_after"] = make_generator(self.device, settings.seed).get_state()
        self.settings = settings
        if order is not None:
            if order not in self.ORDERS:
                raise InputError(f"Unknown fill order {order!r}; choose left-to-right or most-confident.")
            self.order = order

    def _scores(self, position: int, settings: SamplingSettings):
        logits = self.history[-1]["logits"][position][None]
        chain = sampling.build_chain(settings)
        ids = torch.tensor([self.ids], device=self.device) if sampling.needs_input_ids(chain) else None
        return logits, sampling.apply_chain(chain, ids, logits)

    def next_position(self) -> Optional[int]:
        todo = self.unfilled()
        if not todo:
            return None
        if self.order == "left-to-right":
            return todo[0]
        with torch.inference_mode():
            best = [(float(torch.softmax(self._scores(p, self.settings)[1], -1).max()), -p) for p in todo]
        return -max(best)[1]

    def step(self, position: Optional[int] = None, force: Optional[int] = None) -> Optional[int]:
        """Fill one mask (the next by the order, or ``position``); returns the position filled."""
        pos = self.next_position() if position is None else int(position)
        if pos is None:
            return None
        if pos not in self.unfilled():
            raise InputError("That position is not an unfilled mask.")
        s = self.settings
        rng_before = rng_after = self.history[-1]["rng_after"]
        with torch.inference_mode():
            logits, scores = self._scores(pos, s)
            if force is not None:
                tok, how = int(force), "forced"
            elif s.do_sample:
                g = torch.Generator(device=torch.device(self.device))
                g.set_state(rng_before)
                tok = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=g))
                rng_after, how = g.get_state(), "sample"
            else:
                tok, how = int(torch.argmax(scores, -1)), "greedy"
        ids = list(self.ids)
        ids[pos] = tok
        self.history.append({"ids": ids, "logits": self._forward(ids), "rng_after": rng_after,
                             "fill": {"position": pos, "token_id": tok, "how": how, "rng_before": rng_before,
                                      "settings": s, "logits": logits}})
        return pos

    def run(self, job: Optional[Job] = None) -> list[int]:
        job = Job.ensure(job)
        out = []
        while not self.finished:
            job.check()
            out.append(self.step())
            job.progress(len(out) / max(1, len(self.positions)), f"mask {len(out)}")
        return out

    def back(self) -> bool:
        if len(self.history) > 1:
            self.history.pop()
            return True
        return False

    def views(self, settings: Optional[SamplingSettings] = None, n: int = N_CANDIDATES) -> list[MaskView]:
        """Candidates of every mask: open masks from the current state, filled ones from when they were filled."""
        s = settings or self.settings
        fills = {h["fill"]["position"]: h["fill"] for h in self.history[1:]}
        eos = sampling.eos_token_ids(self.model, self.tokenizer)
        out = []
        with torch.inference_mode():
            for k, pos in enumerate(self.positions):
                f = fills.get(pos)
                if f is None:
                    logits = self.history[-1]["logits"][pos][None]
                    v = build_view(self.tokenizer, s, torch.tensor([self.ids], device=self.device), logits,
                                   chosen=None, how="pending", step=0, node_id=pos, eos_ids=eos,
                                   device=self.device, n=n)
                else:
                    fs = settings or f["settings"]
                    v = build_view(self.tokenizer, fs, torch.tensor([self.ids], device=self.device), f["logits"],
                                   chosen=f["token_id"], how=f["how"], step=k + 1, node_id=pos, eos_ids=eos,
                                   rng_before=f["rng_before"], device=self.device, n=n,
                                   refiltered=fs != f["settings"])
                out.append(MaskView(pos, k, f["token_id"] if f else None, v))
        return out

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def tokens(self) -> list[str]:
        return [token_text(self.tokenizer, t) for t in self.ids]


def mask_note(lm: LoadedModel, prompt: str) -> str:
    """A note when the model and the prompt do not fit fill-in-the-mask (empty when fine)."""
    tok = lm.tokenizer
    mask = getattr(tok, "mask_token", None)
    has_mask = any(m and m in (prompt or "") for m in (mask, *MASK_SPELLINGS))
    if lm.kind in (KIND_DECODER, KIND_SEQ2SEQ) and has_mask:
        return (f"{lm.card.name} is {lm.kind}: it continues text and does not fill in masks; "
                "the mask is treated as ordinary text.")
    if lm.kind == KIND_ENCODER:
        out_emb = lm.model.get_output_embeddings() if hasattr(lm.model, "get_output_embeddings") else None
        if out_emb is None:
            return f"{lm.card.name} is an encoder without a language-model head: it cannot predict tokens."
        if not has_mask and mask:
            return f"Put {mask} where a word should be filled in."
    return ""


def snapshot_fill(fm: FillMaskSession, focus: Optional[int] = None,
                  settings: Optional[SamplingSettings] = None) -> FillSnapshot:
    """Everything the panel draws of a fill-in-the-mask; ``focus`` is a mask index."""
    views = tuple(fm.views(settings=settings or fm.settings))
    if focus is None or not 0 <= focus < len(views):
        nxt = fm.next_position()
        focus = fm.positions.index(nxt) if nxt is not None else len(views) - 1
    return FillSnapshot(
        model=fm.lm.card.name, prompt=fm.prompt, tokens=tuple(fm.tokens()), positions=tuple(fm.positions),
        mask_id=fm.mask_id, ids=tuple(fm.ids), views=views, focus=focus, view=views[focus].view,
        finished=fm.finished, stop="filled" if fm.finished else "", notes=tuple(fm.notes), settings=fm.settings,
        text=fm.text(), fills=len(fm.history) - 1, order=fm.order, forwards=len(fm.forward_lengths))
