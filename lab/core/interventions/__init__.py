"""Interventions: change one part of the model and watch the output move.

- ``sites``: the modules of each supported architecture (blocks, attention output
  projections, MLPs per stack); an unknown architecture is refused by name
- ``hooks``: the batched forward with per-element edits, the readout, recording a site
- ``ablate``: heads / attention blocks / MLP blocks zeroed or mean-ablated; the head sweep
- ``patch``: activation patching, a layer × position map of the restored logit difference
"""
from lab.core.interventions.ablate import (
    AblationResult,
    Candidate,
    SweepResult,
    Target,
    ablate,
    check_head,
    parse_blocks,
    parse_heads,
    resolve_target,
    sweep,
)
from lab.core.interventions.hooks import KINDS, Edit, Prepared, forward, prepare, record
from lab.core.interventions.patch import PatchResult, patch
from lab.core.interventions.sites import SITE_LABELS, SITES, UnsupportedArchitecture, stack, stacks

__all__ = ["ablate", "sweep", "patch", "parse_heads", "parse_blocks", "check_head", "resolve_target",
           "AblationResult", "SweepResult", "PatchResult", "Candidate", "Target", "KINDS", "SITES",
           "SITE_LABELS", "Edit", "Prepared", "forward", "prepare", "record", "stack", "stacks",
           "UnsupportedArchitecture"]
