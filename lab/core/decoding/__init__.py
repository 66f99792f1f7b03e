"""Step-through decoding, one token at a time, exactly as transformers' ``generate()``.

- ``session``: ``DecodeSession``, the decode tree of a decoder-only or encoder-decoder
  model (KV cache, branches, re-filtering without a model run);
- ``fill_mask``: ``FillMaskSession``, the encoder-only twin (fill the masks one at a time);
- ``views``: one step's candidates, waterfall and where a sampled draw fell;
- ``snapshots``: the immutable plain data a UI draws (no torch);
- ``compare``: the decode beside the same model at another precision (a twin).
"""
from lab.core.decoding.compare import ComparedStep, Comparison, DecodeComparer
from lab.core.decoding.fill_mask import MASK_SPELLINGS, FillMaskSession, mask_note, snapshot_fill
from lab.core.decoding.session import LOGITS_BUDGET_BYTES, DecodeSession, Node, snapshot_decode
from lab.core.decoding.snapshots import (
                                         Branch,
                                         Candidate,
                                         DecodeSnapshot,
                                         Draw,
                                         FillSnapshot,
                                         MaskView,
                                         NoDecode,
                                         StepView,
                                         TimelineItem,
)
from lab.core.decoding.views import N_CANDIDATES, build_view, token_text

__all__ = ["DecodeSession", "FillMaskSession", "Node", "StepView", "Candidate", "Draw", "TimelineItem", "Branch",
           "MaskView", "DecodeSnapshot", "FillSnapshot", "NoDecode", "build_view", "mask_note", "token_text",
           "snapshot_decode", "snapshot_fill", "N_CANDIDATES", "LOGITS_BUDGET_BYTES", "MASK_SPELLINGS",
           "Comparison", "ComparedStep", "DecodeComparer"]
