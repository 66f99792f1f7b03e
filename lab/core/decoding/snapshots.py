"""What a decode shows, as immutable plain data (no torch): built on the worker thread,
drawn on the GUI thread, so nothing in them may change after they are made.

``StepView`` is one step (candidates, waterfall, draw); ``DecodeSnapshot`` and
``FillSnapshot`` are everything the decoding panel draws after an operation;
``NoDecode`` says why there is no decode of this prompt with this model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional

from lab.core.sampling import SamplingSettings, StageResult

if TYPE_CHECKING:
    from lab.core.decoding.compare import Comparison


@dataclass(frozen=True)
class Candidate:
    id: int
    token: str
    raw_prob: float
    prob: float                 # after the processors (0 = removed)
    removed: bool
    removed_by: str = ""        # the first stage that removed it
    chosen: bool = False

    def to_dict(self) -> dict:
        """The fields ``tvlab decode --json`` lists per candidate."""
        return {"id": self.id, "token": self.token, "raw_prob": self.raw_prob, "prob": self.prob}


@dataclass(frozen=True)
class Draw:
    """Where the uniform number of a sampled token fell on the processed distribution."""

    u: float
    lo: float                   # the chosen token's slice of the cumulative distribution: [lo, hi)
    hi: float
    exact: bool                 # the replayed race picked the chosen token
    note: str = ""


@dataclass(frozen=True)
class StepView:
    """Everything the panel draws for one step."""

    step: int                           # 1-based index of the token (0: the next, pending step)
    node_id: int                        # the node chosen at this step (or the node we stand on when pending)
    chosen_id: Optional[int]
    how: str
    settings: SamplingSettings          # the settings the processed column uses
    candidates: tuple[Candidate, ...]
    stages: tuple[StageResult, ...]
    cumulative: tuple[float, ...]       # cumulative mass top-p reads, along candidates
    top_p_cut: Optional[int]            # top-p keeps candidates[:top_p_cut]
    draw: Optional[Draw]                # for a sampled token
    entropy_bits: float                 # of the raw distribution
    p_eos: float                        # raw probability of end-of-sequence
    refiltered: bool = False            # settings differ from those that chose the token


@dataclass(frozen=True)
class TimelineItem:
    node_id: int
    token_id: int
    token: str
    raw_prob: float
    prob: float
    entropy_bits: float
    p_eos: float
    how: str


@dataclass(frozen=True)
class Branch:
    """A run of tokens between branching points, for the tree view."""

    node_id: int                 # the last node of the run (goto target)
    parent_node_id: Optional[int]
    first_depth: int
    text: str
    tokens: int
    cum_logprob: float
    settings: str
    on_path: bool
    children: tuple["Branch", ...] = ()


@dataclass(frozen=True)
class MaskView:
    position: int               # token index in the sentence
    index: int                  # which mask (0-based, left to right)
    filled_with: Optional[int]
    view: StepView


@dataclass(frozen=True)
class DecodeSnapshot:
    """A step-through decode of a decoder-only or encoder-decoder model."""

    kind: ClassVar[str] = "decode"
    model: str
    prompt: str
    seq2seq: bool
    prompt_tokens: tuple[str, ...]
    timeline: tuple[TimelineItem, ...]
    current_id: int
    focus_id: int
    focus_step: int
    view: StepView
    tree: Branch
    stop: str                           # "eos", "max" or "" (the decode can go on)
    notes: tuple[str, ...]
    settings: SamplingSettings
    max_new_tokens: int
    text: str
    cum_logprob: float
    ms: float                           # the last forward pass
    eos_ids: tuple[int, ...]
    forwards: int                       # forward passes so far
    comparison: Optional["Comparison"] = None   # the path beside another precision, when one is chosen


@dataclass(frozen=True)
class FillSnapshot:
    """Fill-in-the-mask of an encoder-only masked LM; ``focus`` is a mask index."""

    kind: ClassVar[str] = "fill"
    model: str
    prompt: str
    tokens: tuple[str, ...]
    positions: tuple[int, ...]
    mask_id: int
    ids: tuple[int, ...]
    views: tuple[MaskView, ...]
    focus: int
    view: StepView
    finished: bool
    stop: str                           # "filled" or ""
    notes: tuple[str, ...]
    settings: SamplingSettings
    text: str
    fills: int
    order: str
    forwards: int


@dataclass(frozen=True)
class NoDecode:
    """This model cannot decode this prompt (a masked LM without a mask, ...): why."""

    kind: ClassVar[str] = "none"
    model: str
    prompt: str
    note: str
    stop: str = ""
