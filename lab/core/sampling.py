"""Sampling settings and the processor chain of transformers' ``generate()``.

The chain is built from transformers' own classes
(``transformers.generation.logits_process``) in the order ``generate()`` uses
(``GenerationMixin._get_logits_processor``, transformers 5):

    always on:        [SequenceBias, EncoderRepetitionPenalty]  (the model's generation config)
                      RepetitionPenaltyLogitsProcessor          (penalty != 1.0)
                      [NoRepeatNGram ... SuppressTokensAtBegin] (the model's generation config:
                                                                 the "rules" stage, see ModelRules)
    sampling only:    TemperatureLogitsWarper                   (temperature != 1.0)
                      [TopH]                                    (the model's generation config)
                      TopKLogitsWarper                          (top_k != 0)
                      TopPLogitsWarper                          (top_p < 1.0)
                      MinPLogitsWarper                          (min_p > 0)
                      [Typical, Epsilon, Eta]                   (the model's generation config)

then one ``softmax``; greedy is ``argmax`` of the processed scores (first maximum on
ties), sampling is one ``torch.multinomial`` draw. Greedy decoding applies only the
always-on processors, exactly as ``generate(do_sample=False)`` does: temperature, top-k,
top-p and min-p change nothing in greedy mode.

``waterfall()`` runs the same chain one stage at a time and reports the distribution
after each stage, how many tokens survive and how much probability mass each stage
removed. Torch is imported lazily so that the UI can import the settings class.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional, Sequence

import numpy as np

from lab.core.errors import InputError

GREEDY = "greedy"
SAMPLE = "sample"
STRATEGIES = (GREEDY, SAMPLE)

# transformers' own defaults when the model's generation_config says nothing
# (GenerationConfig._get_default_generation_params, transformers 5); read from the
# library when it is there, these are the fallback.
_FALLBACK_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0,
                      "do_sample": False, "max_length": 20, "min_p": None}

SOURCE = ("transformers GenerationMixin._get_logits_processor / _sample (v5): "
          "penalties, then Temperature -> TopK -> TopP -> MinP, softmax, argmax or torch.multinomial")

# The stages of the waterfall, in chain order. The first six are always listed (greyed
# when off); the others appear only when the model's generation config switches them on.
STAGES = ("raw", "penalties", "rules", "temperature", "top-h", "top-k", "top-p", "min-p",
          "typical", "epsilon", "eta")
ALWAYS_LISTED = ("raw", "penalties", "temperature", "top-k", "top-p", "min-p")


@dataclass(frozen=True)
class SamplingSettings:
    """What decides the next token. ``temperature == 0`` means greedy."""

    strategy: str = GREEDY
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 20
    stop_at_eos: bool = True
    seed: int = 0

    @property
    def do_sample(self) -> bool:
        """Sampling happens only with the sample strategy and a temperature above 0."""
        return self.strategy == SAMPLE and self.temperature > 0

    @property
    def effective_strategy(self) -> str:
        return SAMPLE if self.do_sample else GREEDY

    def validated(self) -> "SamplingSettings":
        """Return self after checking every value; raises InputError with one sentence."""
        validate(self)
        return self

    def with_(self, **changes) -> "SamplingSettings":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.do_sample:
            why = " (temperature 0 = greedy)" if self.strategy == SAMPLE else ""
            rp = f", repetition penalty {self.repetition_penalty:g}" if self.repetition_penalty != 1.0 else ""
            return f"greedy{why}{rp}"
        parts = [f"T={self.temperature:g}",
                 f"top-k {self.top_k}" if self.top_k else "top-k off",
                 f"top-p {self.top_p:g}" if self.top_p < 1.0 else "top-p off"]
        if self.min_p:
            parts.append(f"min-p {self.min_p:g}")
        if self.repetition_penalty != 1.0:
            parts.append(f"rep. penalty {self.repetition_penalty:g}")
        return f"sample ({', '.join(parts)}), seed {self.seed}"


def validate(s: SamplingSettings) -> None:
    """Raise InputError for any value transformers (or common sense) would refuse."""
    if s.strategy not in STRATEGIES:
        raise InputError(f"Unknown strategy {s.strategy!r}; choose greedy or sample.")
    for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
        v = getattr(s, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v) or math.isinf(v):
            raise InputError(f"{name.replace('_', '-')} must be a number, not {v!r}.")
    if s.temperature < 0:
        raise InputError(f"Temperature must be 0 or more (0 means greedy), not {s.temperature:g}.")
    if not isinstance(s.top_k, int) or isinstance(s.top_k, bool) or s.top_k < 0:
        raise InputError(f"Top-k must be a whole number of 0 or more (0 turns it off), not {s.top_k}.")
    if not 0 < s.top_p <= 1:
        raise InputError(f"Top-p must be above 0 and at most 1 (1.0 turns it off), not {s.top_p:g}.")
    if not 0 <= s.min_p <= 1:
        raise InputError(f"Min-p must be between 0 and 1 (0 turns it off), not {s.min_p:g}.")
    if s.repetition_penalty <= 0:
        raise InputError(f"The repetition penalty must be above 0 (1.0 turns it off), not {s.repetition_penalty:g}.")
    if not isinstance(s.max_new_tokens, int) or isinstance(s.max_new_tokens, bool) or s.max_new_tokens < 1:
        raise InputError(f"Max new tokens must be a whole number of 1 or more, not {s.max_new_tokens}.")
    if not isinstance(s.seed, int) or isinstance(s.seed, bool) or s.seed < 0:
        raise InputError(f"The seed must be a whole number of 0 or more, not {s.seed}.")


def library_defaults() -> dict:
    """transformers' effective defaults for fields a generation config leaves unset."""
    try:
        from transformers import GenerationConfig

        d = dict(GenerationConfig._get_default_generation_params())
        return {**_FALLBACK_DEFAULTS, **{k: d[k] for k in _FALLBACK_DEFAULTS if k in d}}
    except Exception:  # a future transformers without the helper: the documented values
        return dict(_FALLBACK_DEFAULTS)


@dataclass(frozen=True)
class ModelDefaults:
    """The effective starting settings for a model and where each value came from."""

    settings: SamplingSettings
    sources: dict[str, str] = field(default_factory=dict)   # field -> "model" | "transformers"
    eos_token_ids: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()                              # generation-config options the lab does not apply


# Options of a generation_config the lab cannot follow step by step (with their neutral value).
_NOT_APPLIED = {"num_beams": 1, "guidance_scale": None, "watermarking_config": None, "penalty_alpha": None,
                "prompt_lookup_num_tokens": None, "assistant_model": None}


def model_defaults(model: Any) -> ModelDefaults:
    """Settings from the model's ``generation_config`` over transformers' defaults."""
    gc = getattr(model, "generation_config", None)
    lib = library_defaults()
    sources: dict[str, str] = {}

    def pick(name: str, lib_name: Optional[str] = None):
        v = getattr(gc, name, None) if gc is not None else None
        if v is not None:
            sources[name] = "model"
            return v
        sources[name] = "transformers"
        return lib.get(lib_name or name)

    do_sample = bool(pick("do_sample"))
    temperature = float(pick("temperature"))
    top_k = int(pick("top_k") or 0)
    top_p = float(pick("top_p"))
    min_p = float(pick("min_p") or 0.0)
    rep = float(pick("repetition_penalty"))
    mnt = getattr(gc, "max_new_tokens", None) if gc is not None else None
    if mnt is not None:
        sources["max_new_tokens"] = "model"
        max_new = int(mnt)
    else:
        sources["max_new_tokens"] = "transformers"
        max_new = 20   # generate(): "by default let's always generate 20 new tokens"
    notes = []
    if gc is not None:
        for name, neutral in _NOT_APPLIED.items():
            v = getattr(gc, name, None)
            if v is not None and v != neutral and not (name == "guidance_scale" and v == 1):
                notes.append(f"The model's generation config sets {name}={v!r}, which the lab does not apply "
                             "(it decodes one sequence, one token at a time).")
        applied = ModelRules.options_set(gc)
        if applied:
            notes.append("The model's generation config also sets " + ", ".join(f"{k}={v!r}" for k, v in applied.items())
                         + ": applied as generate() applies them (the rules and extra warper stages).")
    s = SamplingSettings(strategy=SAMPLE if do_sample else GREEDY, temperature=temperature, top_k=top_k,
                         top_p=min(max(top_p, 1e-6), 1.0), min_p=min(max(min_p, 0.0), 1.0),
                         repetition_penalty=rep if rep > 0 else 1.0, max_new_tokens=max(1, max_new))
    return ModelDefaults(settings=s, sources=sources, eos_token_ids=tuple(eos_token_ids(model)), notes=tuple(notes))


def eos_token_ids(model: Any, tokenizer: Any = None) -> list[int]:
    """The end-of-sequence ids generate() stops on (generation config, then config, then tokenizer)."""
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        v = getattr(src, "eos_token_id", None) if src is not None else None
        if v is None:
            continue
        ids = [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        if ids:
            return ids
    return []


# --- the chain --------------------------------------------------------------------------

@dataclass
class Stage:
    name: str                 # one of STAGES (not "raw")
    processor: Any            # a transformers LogitsProcessor
    label: str                # what the UI prints


class ModelRules:
    """What a model's generation config adds to generate()'s chain beyond the panel's
    controls (n-gram blocking, minimum lengths, forced and suppressed tokens, bad words,
    sequence bias, encoder penalties, typical / epsilon / eta / top-h sampling), built
    with transformers' own classes exactly as ``GenerationMixin._get_logits_processor``
    builds them for a ``generate()`` call on the same prompt."""

    OPTIONS = {"sequence_bias": None, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
               "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0,
               "min_new_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
               "remove_invalid_values": False, "exponential_decay_length_penalty": None,
               "suppress_tokens": None, "begin_suppress_tokens": None, "top_h": None, "typical_p": 1.0,
               "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}

    def __init__(self, gc: Any, *, eos_ids: Sequence[int], prompt_len: int, encoder_ids: Sequence[int],
                 device: str = "cpu"):
        self.values = self.options_set(gc) if gc is not None else {}
        self.eos_ids = [int(e) for e in eos_ids]
        self.prompt_len = int(prompt_len)
        self.encoder_ids = [int(i) for i in encoder_ids]
        self.device = device

    @classmethod
    def options_set(cls, gc: Any) -> dict:
        out = {}
        for name, neutral in cls.OPTIONS.items():
            v = getattr(gc, name, None)
            if v is not None and v != neutral:
                out[name] = v
        return out

    def __bool__(self) -> bool:
        return bool(self.values)

    def _eos(self):
        import torch

        return torch.tensor(self.eos_ids, device=self.device) if self.eos_ids else None

    def _encoder_ids(self):
        import torch

        return torch.tensor([self.encoder_ids], device=self.device) if self.encoder_ids else None

    def stages(self, s: SamplingSettings, where: str) -> list[Stage]:
        """The rules' processors at one place of the chain: ``before`` the repetition penalty,
        ``after`` it, ``top-h`` (after temperature) or ``warpers`` (after min-p)."""
        from transformers.generation import logits_process as lp

        v, out = self.values, []
        eos, enc = self._eos(), self._encoder_ids()
        if where == "before":
            if "sequence_bias" in v:
                out.append(Stage("penalties", lp.SequenceBiasLogitsProcessor(v["sequence_bias"]),
                                 f"sequence bias ({len(v['sequence_bias'])} sequences)"))
            if "encoder_repetition_penalty" in v and enc is not None:
                out.append(Stage("penalties", lp.EncoderRepetitionPenaltyLogitsProcessor(
                    penalty=float(v["encoder_repetition_penalty"]), encoder_input_ids=enc),
                    f"encoder repetition penalty {v['encoder_repetition_penalty']:g}"))
        elif where == "after":
            if "no_repeat_ngram_size" in v:
                out.append(Stage("rules", lp.NoRepeatNGramLogitsProcessor(int(v["no_repeat_ngram_size"])),
                                 f"no repeated {v['no_repeat_ngram_size']}-grams"))
            if "encoder_no_repeat_ngram_size" in v and enc is not None:
                out.append(Stage("rules", lp.EncoderNoRepeatNGramLogitsProcessor(
                    int(v["encoder_no_repeat_ngram_size"]), enc),
                    f"no {v['encoder_no_repeat_ngram_size']}-grams copied from the input"))
            if "bad_words_ids" in v:
                out.append(Stage("rules", lp.NoBadWordsLogitsProcessor(v["bad_words_ids"], eos),
                                 f"bad words ({len(v['bad_words_ids'])})"))
            if "min_length" in v and eos is not None:
                out.append(Stage("rules", lp.MinLengthLogitsProcessor(int(v["min_length"]), eos, device=self.device),
                                 f"no EOS before length {v['min_length']}"))
            if "min_new_tokens" in v and eos is not None and int(v["min_new_tokens"]) > 0:
                out.append(Stage("rules", lp.MinNewTokensLengthLogitsProcessor(
                    self.prompt_len, int(v["min_new_tokens"]), eos, device=self.device),
                    f"no EOS before {v['min_new_tokens']} new tokens"))
            if "forced_bos_token_id" in v:
                out.append(Stage("rules", lp.ForcedBOSTokenLogitsProcessor(int(v["forced_bos_token_id"])),
                                 f"first token forced to {v['forced_bos_token_id']}"))
            if "forced_eos_token_id" in v:
                out.append(Stage("rules", lp.ForcedEOSTokenLogitsProcessor(
                    self.prompt_len + int(s.max_new_tokens), v["forced_eos_token_id"], device=self.device),
                    "EOS forced at the last step"))
            if v.get("remove_invalid_values") is True:
                out.append(Stage("rules", lp.InfNanRemoveLogitsProcessor(), "inf / nan removed"))
            if "exponential_decay_length_penalty" in v and eos is not None:
                out.append(Stage("rules", lp.ExponentialDecayLengthPenalty(
                    tuple(v["exponential_decay_length_penalty"]), eos, self.prompt_len),
                    f"EOS boost after {v['exponential_decay_length_penalty'][0]} tokens"))
            if "suppress_tokens" in v:
                out.append(Stage("rules", lp.SuppressTokensLogitsProcessor(v["suppress_tokens"], device=self.device),
                                 f"{len(v['suppress_tokens'])} tokens suppressed"))
            if "begin_suppress_tokens" in v:
                begin = self.prompt_len if (self.prompt_len > 1 or "forced_bos_token_id" not in v) \
                    else self.prompt_len + 1
                out.append(Stage("rules", lp.SuppressTokensAtBeginLogitsProcessor(
                    v["begin_suppress_tokens"], begin, device=self.device),
                    f"{len(v['begin_suppress_tokens'])} tokens suppressed at the first step"))
        elif where == "top-h":
            if "top_h" in v and hasattr(lp, "TopHLogitsWarper"):
                out.append(Stage("top-h", lp.TopHLogitsWarper(top_h=float(v["top_h"])), f"top-h {v['top_h']:g}"))
        elif where == "warpers":
            if "typical_p" in v and float(v["typical_p"]) < 1.0:
                out.append(Stage("typical", lp.TypicalLogitsWarper(mass=float(v["typical_p"]), min_tokens_to_keep=1),
                                 f"typical-p {v['typical_p']:g}"))
            if "epsilon_cutoff" in v and 0.0 < float(v["epsilon_cutoff"]) < 1.0:
                out.append(Stage("epsilon", lp.EpsilonLogitsWarper(epsilon=float(v["epsilon_cutoff"]),
                                                                   min_tokens_to_keep=1),
                                 f"epsilon cutoff {v['epsilon_cutoff']:g}"))
            if "eta_cutoff" in v and 0.0 < float(v["eta_cutoff"]) < 1.0:
                out.append(Stage("eta", lp.EtaLogitsWarper(epsilon=float(v["eta_cutoff"]), min_tokens_to_keep=1,
                                                           device=self.device),
                                 f"eta cutoff {v['eta_cutoff']:g}"))
        return out


def build_chain(s: SamplingSettings, rules: Optional[ModelRules] = None) -> list[Stage]:
    """The processors generate() would apply for these settings (and the model's own
    generation-config rules, when given), in its order."""
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    extra = (lambda where: rules.stages(s, where)) if rules else (lambda where: [])
    chain: list[Stage] = list(extra("before"))
    if s.repetition_penalty != 1.0:
        chain.append(Stage("penalties", RepetitionPenaltyLogitsProcessor(float(s.repetition_penalty)),
                           f"repetition penalty {s.repetition_penalty:g}"))
    chain += extra("after")
    if s.do_sample:
        if s.temperature != 1.0:
            chain.append(Stage("temperature", TemperatureLogitsWarper(float(s.temperature)),
                               f"temperature {s.temperature:g}"))
        chain += extra("top-h")
        if s.top_k != 0:
            chain.append(Stage("top-k", TopKLogitsWarper(top_k=int(s.top_k), min_tokens_to_keep=1),
                               f"top-k {s.top_k}"))
        if s.top_p < 1.0:
            chain.append(Stage("top-p", TopPLogitsWarper(top_p=float(s.top_p), min_tokens_to_keep=1),
                               f"top-p {s.top_p:g}"))
        if s.min_p > 0:
            chain.append(Stage("min-p", MinPLogitsWarper(min_p=float(s.min_p), min_tokens_to_keep=1),
                               f"min-p {s.min_p:g}"))
        chain += extra("warpers")
    return chain


def needs_input_ids(chain: Sequence[Stage]) -> bool:
    return any(st.name in ("penalties", "rules") for st in chain)


def apply_chain(chain: Sequence[Stage], input_ids, logits):
    """Processed scores ``[1, vocab]`` (float32, -inf where removed), as generate() computes them."""
    scores = logits
    for st in chain:
        scores = st.processor(input_ids, scores)
    return scores


def process(settings: SamplingSettings, input_ids, logits, rules: Optional[ModelRules] = None):
    """``apply_chain(build_chain(settings, rules), ...)``; ``logits`` is ``[1, vocab]`` float32."""
    return apply_chain(build_chain(settings, rules), input_ids, logits)


# --- the waterfall ------------------------------------------------------------------------

@dataclass(frozen=True)
class StageResult:
    name: str
    label: str
    applied: bool
    survivors: int              # tokens with non-zero probability after this stage
    mass_removed: float         # probability mass (of the distribution entering the stage) it removed
    removed: int                # tokens this stage removed
    entropy_bits: float
    probs: np.ndarray           # [vocab] float32, the distribution after this stage
    note: str = ""


def entropy_bits(probs) -> float:
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def waterfall(settings: SamplingSettings, input_ids, logits, rules: Optional[ModelRules] = None) -> list[StageResult]:
    """The distribution after each stage (raw -> penalties -> [rules] -> temperature -> top-k
    -> top-p -> min-p -> [typical, epsilon, eta]); processors of one stage run together.

    The panel's own stages are listed even when off (greyed), so a learner sees the whole
    chain every time; the model's extra stages appear only when its config switches them on.
    """
    import torch

    chain = build_chain(settings, rules)
    scores = logits.float()
    probs = torch.softmax(scores, dim=-1)
    p_np = probs[0].cpu().numpy().astype(np.float32)
    n = int((probs[0] > 0).sum())
    out = [StageResult("raw", "raw model output (softmax of the logits)", True, n, 0.0, 0, entropy_bits(p_np), p_np)]
    off_reason = {
        "penalties": "repetition penalty 1.0 (off)",
        "temperature": "temperature 1.0 (no change)",
        "top-k": "top-k 0 (off)",
        "top-p": "top-p 1.0 (off)",
        "min-p": "min-p 0 (off)",
    }
    for name in STAGES[1:]:
        group = [st for st in chain if st.name == name]
        if not group:
            if name not in ALWAYS_LISTED:
                continue
            note = off_reason[name]
            if name != "penalties" and not settings.do_sample:
                note = "not applied: greedy decoding skips the sampling warpers"
            out.append(StageResult(name, note, False, out[-1].survivors, 0.0, 0, out[-1].entropy_bits,
                                   out[-1].probs, note))
            continue
        before = probs
        for st in group:
            scores = st.processor(input_ids, scores)
        probs = torch.softmax(scores, dim=-1)
        removed_mask = (before[0] > 0) & torch.isneginf(scores[0])
        mass = float(before[0][removed_mask].sum())
        p_np = probs[0].cpu().numpy().astype(np.float32)
        out.append(StageResult(name, "; ".join(st.label for st in group), True, int((probs[0] > 0).sum()), mass,
                               int(removed_mask.sum()), entropy_bits(p_np), p_np))
    return out


def top_p_cut(settings: SamplingSettings, stages: list[StageResult], order: np.ndarray) -> Optional[int]:
    """How many of the tokens in ``order`` (most likely first) top-p keeps, or None when off."""
    if not settings.do_sample or settings.top_p >= 1.0:
        return None
    by_name = {s.name: s for s in stages}
    kept = by_name["top-p"].probs[order] > 0
    return int(kept.sum()) if kept.all() or not kept.any() else int(np.argmin(kept))


def top_p_input(stages: list[StageResult]) -> np.ndarray:
    """The distribution top-p reads (after penalties, temperature and top-k)."""
    by_name = {s.name: s for s in stages}
    return by_name["top-k"].probs


__all__ = ["SamplingSettings", "GREEDY", "SAMPLE", "STAGES", "ALWAYS_LISTED", "ModelRules", "validate", "model_defaults", "ModelDefaults",
           "library_defaults", "build_chain", "apply_chain", "process", "waterfall", "StageResult",
           "entropy_bits", "eos_token_ids", "needs_input_ids", "top_p_cut", "top_p_input", "SOURCE"]
