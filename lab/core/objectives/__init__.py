"""Pre-training objectives: the example each objective builds from a text, and the loaded
model's own per-token loss on it.

- ``examples``: causal LM, masked LM (BERT's 80/10/10), span corruption (T5's noise mask)
- ``losses``: next-token loss, pseudo-log-likelihood, seq2seq target loss, per token
- ``report``: ``analyse(lm, text, target)`` -> ``Report`` (both, for the view and the CLI)
"""
from lab.core.objectives.examples import (
                                          CAUSAL,
                                          IGNORE,
                                          MASKED,
                                          SPAN,
                                          Cell,
                                          Example,
                                          Row,
                                          build,
                                          causal_example,
                                          masked_example,
                                          random_spans_noise_mask,
                                          sentinels,
                                          span_example,
)
from lab.core.objectives.losses import LossStrip, TokenLoss, causal, pseudo_log_likelihood, seq2seq
from lab.core.objectives.report import Report, analyse

__all__ = ["CAUSAL", "IGNORE", "MASKED", "SPAN", "Cell", "Example", "Row", "build", "causal_example",
           "masked_example", "random_spans_noise_mask", "sentinels", "span_example", "LossStrip", "TokenLoss",
           "causal", "pseudo_log_likelihood", "seq2seq", "Report", "analyse"]
