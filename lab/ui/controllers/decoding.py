"""The decoding panel's model-side state: one decode (or fill-in-the-mask) of the current model.

Every operation applies the settings the panel sends, does one thing (start, step, back,
branch, go to a node, or only re-filter the cached logits) and returns an immutable
snapshot (lab.core.decoding.snapshots). When a comparison model is chosen (``compare``),
every decode snapshot carries the path beside it (lab.core.decoding.compare). Torch is imported by the operations, on the
worker, so the panel can import this module without it.
"""
from __future__ import annotations

from typing import Optional

from lab.ui.controllers.base import Controller


class DecodeController(Controller):
    name = "decoding"
    lane = "model"

    def __init__(self):
        self._dec = None          # DecodeSession or FillMaskSession of the current model
        self._comparer = None     # DecodeComparer of the current model (None: no comparison)

    def model_replaced(self) -> None:
        self._dec = None
        self._close_comparer()

    def _close_comparer(self) -> None:
        if self._comparer is not None:
            self._comparer.close()
            self._comparer = None

    # --- operations: op(lm, job, **args) -> snapshot ------------------------------------------
    def reset(self, lm, job, prompt: str, settings, order: str):
        """Start a decode of ``prompt`` (a fill-in-the-mask for a masked LM). A prompt the model
        cannot take keeps the decode on screen and says why (the error reaches the panel)."""
        from lab.core import decoding
        from lab.core.models import KIND_ENCODER

        if lm.kind == KIND_ENCODER:
            note = decoding.mask_note(lm, prompt)
            mask = getattr(lm.tokenizer, "mask_token", None)
            if (mask and mask not in prompt) or "language-model head" in note:
                self._dec = None
                return decoding.NoDecode(model=lm.card.name, prompt=prompt,
                                         note=note or "This model cannot fill in masks.")
            self._dec = decoding.FillMaskSession(lm, prompt, settings, order=order, job=job)
        else:
            self._dec = decoding.DecodeSession(lm, prompt, settings, job=job)
        return self._snapshot(None, settings, job)

    def step(self, lm, job, settings, order: str, force: Optional[int] = None, position: Optional[int] = None):
        """Choose the next token (or ``force`` one; a masked LM: fill ``position``)."""
        dec = self._apply(lm, settings, order)
        job.check()
        if self._is_fill(dec):
            dec.step(position=position, force=force)
        else:
            dec.step(force=force)
        return self._snapshot(None, settings, job)

    def back(self, lm, job, settings, order: str):
        self._apply(lm, settings, order).back()
        return self._snapshot(None, settings, job)

    def branch(self, lm, job, settings, order: str, node_id: int, token_id: int):
        """Replace the token of step ``node_id``: a new branch of the tree."""
        self._apply(lm, settings, order).branch(node_id, token_id)
        return self._snapshot(None, settings, job)

    def goto(self, lm, job, settings, order: str, node_id: int):
        self._apply(lm, settings, order).goto(node_id)
        return self._snapshot(None, settings, job)

    def view(self, lm, job, settings, order: str, focus: Optional[int] = None):
        """Re-filter the cached logits of step ``focus`` with ``settings`` (no model run)."""
        self._apply(lm, settings, order)
        return self._snapshot(focus, settings, job)

    def compare(self, lm, job, settings, order: str, spec: Optional[str], focus: Optional[int] = None):
        """Read the decode with the model at ``spec`` too ("fp16", "bf16", a path to an .onnx file;
        None: stop comparing). The old comparison model is closed first; one that cannot open
        raises InputError and leaves none. Returns the decode's snapshot, or None before a decode."""
        from lab.core.decoding import DecodeComparer
        from lab.core.errors import InputError
        from lab.core.models import KIND_ENCODER
        from lab.core.precision.twins import open_twin

        self._close_comparer()
        if spec is not None:
            if lm.kind == KIND_ENCODER:
                raise InputError("Comparing needs a model that generates: fill-in-the-mask has no decode path.")
            self._comparer = DecodeComparer(open_twin(lm.model, lm.tokenizer, spec))
        if self._dec is None or self._dec.lm is not lm or self._is_fill(self._dec):
            return None
        self._apply(lm, settings, order)
        return self._snapshot(focus, settings, job)

    def defaults(self, lm, job):
        """The model's generation defaults (lab.core.sampling.ModelDefaults)."""
        from lab.core import sampling

        return sampling.model_defaults(lm.model)

    def count(self, lm, job, parts: dict) -> tuple[tuple[str, int], ...]:
        """Tokens of each part of a prompt template, in order."""
        return tuple((k, len(lm.tokenizer(v, add_special_tokens=False)["input_ids"]) if v else 0)
                     for k, v in parts.items())

    # --- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _is_fill(dec) -> bool:
        from lab.core.decoding import FillMaskSession

        return isinstance(dec, FillMaskSession)

    def _apply(self, lm, settings, order: str):
        """The decode of this model with the panel's current settings."""
        dec = self._dec
        if dec is None or dec.lm is not lm:
            from lab.core.errors import InputError

            raise InputError("Press Reset to start a decode of the current prompt with this model.")
        if self._is_fill(dec):
            dec.set_settings(settings, order)
        else:
            dec.set_settings(settings)
        return dec

    def _snapshot(self, focus, settings, job=None):
        from dataclasses import replace

        from lab.core import decoding

        if self._is_fill(self._dec):
            return decoding.snapshot_fill(self._dec, focus, settings)
        snap = decoding.snapshot_decode(self._dec, focus, settings)
        if self._comparer is None:
            return snap
        return replace(snap, comparison=self._comparer.compare(self._dec, job))
