"""One captured forward pass, its attention aggregates, and the logit lens.

What lives where:

- ``forward``: ``capture`` (run the model once, eager attention) and ``encode``
- ``record``: the ``Trace`` itself, stack labels and readable token labels
- ``arrays``: where the tensors live (numpy, ``CausalArray``, ``DeviceArray``) and their size
- ``aggregates``: mean/max over heads, rollout, entropy, thumbnails, hiding the first token
- ``lens``: the logit lens
- ``npz``: the raw attentions as an NPZ file
"""
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ
from lab.core.trace.aggregates import (
                                      THUMB_SIZE,
                                      head_entropy,
                                      hide_first_token,
                                      kv_groups,
                                      max_over_heads,
                                      mean_over_heads,
                                      rollout,
                                      thumbnails,
)
from lab.core.trace.arrays import (
                                      FLOAT16_ABOVE_BYTES,
                                      PACK_CAUSAL_ABOVE_BYTES,
                                      CausalArray,
                                      DeviceArray,
                                      attention_bytes,
)
from lab.core.trace.forward import capture, context_limit, eager_attention, encode
from lab.core.trace.lens import LensLayer, LensResult, lens_parts, logit_lens
from lab.core.trace.npz import npz_arrays, save_npz
from lab.core.trace.record import STACK_LABELS, Trace, display_token, display_tokens, word_token

__all__ = ["Trace", "DeviceArray", "CausalArray", "capture", "encode", "context_limit", "eager_attention",
           "logit_lens", "lens_parts", "LensResult", "LensLayer",
           "mean_over_heads", "max_over_heads", "rollout", "head_entropy", "thumbnails", "THUMB_SIZE",
           "hide_first_token", "kv_groups", "attention_bytes", "FLOAT16_ABOVE_BYTES", "PACK_CAUSAL_ABOVE_BYTES",
           "STACK_LABELS", "display_token", "display_tokens", "word_token", "npz_arrays", "save_npz",
           "KIND_DECODER", "KIND_ENCODER", "KIND_SEQ2SEQ"]
