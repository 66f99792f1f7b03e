"""The Intervene tab's work on the model lane: ablation, the head sweep and patching.

Nothing outlives a request, but the panel sends operation names and plain values (a head
list as text, prompts, token strings), so no worker code can hold a widget, and each
operation gets its own channel for stale results, progress and cancel. The core parses
and checks the values, so a bad head or target comes back as one message.
"""
from __future__ import annotations

from typing import Optional

from lab.ui.controllers.base import Controller


class InterventionController(Controller):
    name = "interventions"
    lane = "model"

    def ablate(self, lm, job, text: str, heads: str = "", attn: str = "", mlp: str = "", kind: str = "zero",
               target: Optional[str] = None, decoder_text: Optional[str] = None):
        from lab.core import interventions as iv

        return iv.ablate(lm, text, heads=iv.parse_heads(lm, heads), attn=iv.parse_blocks(lm, attn, "attn"),
                         mlp=iv.parse_blocks(lm, mlp, "mlp"), kind=kind, target=target or None,
                         decoder_text=decoder_text or None, job=job)

    def sweep(self, lm, job, text: str, stack: Optional[str] = None, kind: str = "zero",
              target: Optional[str] = None, decoder_text: Optional[str] = None):
        from lab.core import interventions as iv

        return iv.sweep(lm, text, stacks=[stack] if stack else None, kind=kind, target=target or None,
                        decoder_text=decoder_text or None, job=job)

    def patch(self, lm, job, clean: str, corrupt: str, answer: str, wrong: str, site: str = "resid",
              align: bool = False):
        from lab.core import interventions as iv

        return iv.patch(lm, clean, corrupt, answer, wrong, site=site, align=align, job=job)
