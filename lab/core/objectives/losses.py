"""The loaded model's own loss on a text, token by token, under the objective it was
trained with.

- decoder: next-token cross-entropy; token t is scored from the logits at t-1, so the
  mean equals transformers' ``loss`` with ``labels=input_ids``;
- encoder (masked LM): pseudo-log-likelihood: each ordinary token is masked in turn and
  scored from its own position; the masked copies run in batches;
- encoder-decoder: the cross-entropy of each target token given the source and the target
  so far (teacher forcing), equal to transformers' ``loss`` with ``labels``.

Surprisal is -log p in nats (bits = nats / ln 2); perplexity is exp(mean nats).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import LoadedModel, device_errors
from lab.core.objectives.examples import Labeller

PLL_BATCH = 32
TOP_K = 5
CAUSAL_LOSS, PLL, SEQ2SEQ_LOSS = "causal", "pll", "seq2seq"
DESCRIPTIONS = {
    CAUSAL_LOSS: "next-token loss: each token scored from the tokens before it",
    PLL: "pseudo-log-likelihood: each token masked in turn and scored from both sides",
    SEQ2SEQ_LOSS: "target loss: each output token scored from the input and the output before it",
}

UNSCORED = {CAUSAL_LOSS: "the first token has nothing before it to predict it from",
            PLL: "special tokens are never masked", SEQ2SEQ_LOSS: ""}


@dataclass(frozen=True)
class TokenLoss:
    """One token of the strip; ``nats`` is None where nothing predicts it (the first
    token of a decoder, a special token under PLL)."""

    index: int
    id: int
    text: str
    nats: Optional[float] = None
    rank: Optional[int] = None                  # 1 = the model's top prediction
    top: tuple[tuple[str, float], ...] = ()     # (token, probability), most likely first

    @property
    def bits(self) -> Optional[float]:
        return None if self.nats is None else self.nats / math.log(2)

    @property
    def probability(self) -> Optional[float]:
        return None if self.nats is None else math.exp(-self.nats)

    def to_json(self) -> dict:
        return {"index": self.index, "id": self.id, "text": self.text, "nats": self.nats, "bits": self.bits,
                "probability": self.probability, "rank": self.rank,
                "top": [{"text": t, "probability": p} for t, p in self.top]}


@dataclass(frozen=True)
class LossStrip:
    objective: str
    tokens: tuple[TokenLoss, ...]

    @property
    def scored(self) -> list[TokenLoss]:
        return [t for t in self.tokens if t.nats is not None]

    @property
    def mean_nats(self) -> float:
        s = self.scored
        return sum(t.nats for t in s) / len(s) if s else float("nan")

    @property
    def mean_bits(self) -> float:
        return self.mean_nats / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nats)

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.objective]

    @property
    def unscored_reason(self) -> str:
        """Why a token without a value has none."""
        return UNSCORED[self.objective]

    def to_json(self) -> dict:
        return {"objective": self.objective, "description": self.description,
                "mean_nats": self.mean_nats, "mean_bits": self.mean_bits, "perplexity": self.perplexity,
                "scored": len(self.scored), "tokens": [t.to_json() for t in self.tokens]}


def _score(label: Labeller, logits: torch.Tensor, targets: torch.Tensor, top_k: int) -> list[tuple[float, int, tuple]]:
    """(nats, rank, top) of each row of ``logits`` [n, V] for its target id."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    nats = -logp.gather(1, targets[:, None])[:, 0]
    ranks = (logp > logp.gather(1, targets[:, None])).sum(dim=1) + 1
    k = min(top_k, logp.shape[-1])
    top_p, top_i = logp.topk(k, dim=-1)
    out = []
    for row in range(logits.shape[0]):
        top = tuple((label(int(i)), float(math.exp(float(p)))) for p, i in zip(top_p[row], top_i[row]))
        out.append((float(nats[row]), int(ranks[row]), top))
    return out


def causal(lm: LoadedModel, ids: Sequence[int], *, top_k: int = TOP_K) -> LossStrip:
    """Next-token surprisal of each token (the first has none)."""
    if len(ids) < 2:
        raise InputError("The next-token loss needs at least two tokens: type a longer text.")
    x = torch.tensor([list(ids)], device=lm.device)
    label = Labeller(lm.tokenizer)
    with torch.inference_mode(), device_errors(lm.device):
        logits = lm.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]
        scores = _score(label, logits[:-1], x[0, 1:], top_k)
    toks = [TokenLoss(0, int(ids[0]), label(ids[0]))]
    toks += [TokenLoss(i, int(ids[i]), label(ids[i]), *scores[i - 1]) for i in range(1, len(ids))]
    return LossStrip(CAUSAL_LOSS, tuple(toks))


def pseudo_log_likelihood(lm: LoadedModel, ids: Sequence[int], special: Sequence[bool], *,
                          top_k: int = TOP_K, batch: int = PLL_BATCH, job: Optional[Job] = None) -> LossStrip:
    """Mask each ordinary token in turn (one copy of the text per token, ``batch`` copies
    per forward pass) and score it at its own position."""
    job = Job.ensure(job)
    mask_id = getattr(lm.tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise InputError(f"{lm.card.name}'s tokenizer has no mask token, so there is no masked-LM loss.")
    if lm.model.get_output_embeddings() is None:
        raise InputError(f"{lm.card.name} has no language-model head, so it cannot predict masked tokens.")
    positions = [i for i, s in enumerate(special) if not s]
    if not positions:
        raise InputError("The text has no ordinary tokens to score.")
    base = torch.tensor(list(ids), device=lm.device)
    label = Labeller(lm.tokenizer)
    scores: dict[int, tuple] = {}
    with torch.inference_mode(), device_errors(lm.device):
        for start in range(0, len(positions), batch):
            job.check()
            job.progress(start / len(positions), "masking each token in turn")
            chunk = torch.tensor(positions[start:start + batch], device=lm.device)
            x = base.repeat(len(chunk), 1)
            x[torch.arange(len(chunk)), chunk] = mask_id
            logits = lm.model(input_ids=x, attention_mask=torch.ones_like(x)).logits
            rows = logits[torch.arange(len(chunk)), chunk]
            for pos, s in zip(chunk.tolist(), _score(label, rows, base[chunk], top_k)):
                scores[pos] = s
    toks = tuple(TokenLoss(i, int(t), label(t), *scores.get(i, ())) for i, t in enumerate(ids))
    return LossStrip(PLL, toks)


def seq2seq(lm: LoadedModel, source_ids: Sequence[int], target_ids: Sequence[int], *,
            top_k: int = TOP_K) -> LossStrip:
    """Surprisal of each target token given the source (teacher forcing from the decoder's
    start token, as transformers shifts ``labels``)."""
    if not target_ids:
        raise InputError("The target is empty: type the output text to score.")
    src = torch.tensor([list(source_ids)], device=lm.device)
    labels = torch.tensor([list(target_ids)], device=lm.device)
    label = Labeller(lm.tokenizer)
    with torch.inference_mode(), device_errors(lm.device):
        logits = lm.model(input_ids=src, attention_mask=torch.ones_like(src), labels=labels).logits[0]
        scores = _score(label, logits, labels[0], top_k)
    return LossStrip(SEQ2SEQ_LOSS, tuple(TokenLoss(i, int(t), label(t), *scores[i])
                                         for i, t in enumerate(target_ids)))
