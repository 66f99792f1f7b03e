"""Sampling settings, defaults and the processor chain (transformers' own classes)."""
import numpy as np
import pytest
import torch

from lab.core import sampling
from lab.core.errors import InputError
from lab.core.sampling import SamplingSettings


def sample(**kw):
    return SamplingSettings(strategy="sample", **kw)


@pytest.mark.parametrize("bad", [dict(top_p=0.0), dict(top_p=1.5), dict(top_k=-1), dict(temperature=-0.1),
                                 dict(min_p=1.5), dict(repetition_penalty=0.0), dict(max_new_tokens=0),
                                 dict(seed=-3), dict(strategy="beam"), dict(top_p=float("nan"))])
def test_invalid_settings_are_refused_with_one_sentence(bad):
    with pytest.raises(InputError) as err:
        SamplingSettings(**bad).validated()
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_temperature_zero_means_greedy_and_says_so():
    s = sample(temperature=0.0).validated()
    assert not s.do_sample and s.effective_strategy == "greedy"
    assert "temperature 0 = greedy" in s.describe()
    assert [st.name for st in sampling.build_chain(s)] == []


def test_defaults_follow_transformers_when_the_model_says_nothing(tiny_gpt2):
    from lab.core import models

    lm = models.load(str(tiny_gpt2))
    d = sampling.model_defaults(lm.model)
    assert (d.settings.temperature, d.settings.top_k, d.settings.top_p) == (1.0, 50, 1.0)
    assert d.settings.strategy == "greedy" and d.settings.max_new_tokens == 20
    assert d.sources["top_k"] == "transformers"
    lm.model.generation_config.do_sample = True
    lm.model.generation_config.temperature = 0.7
    lm.model.generation_config.top_p = 0.9
    lm.model.generation_config.no_repeat_ngram_size = 3
    d = sampling.model_defaults(lm.model)
    assert d.settings.strategy == "sample" and d.settings.temperature == 0.7 and d.settings.top_p == 0.9
    assert d.sources["temperature"] == "model" and d.sources["top_k"] == "transformers"
    assert any("no_repeat_ngram_size" in n for n in d.notes)


def test_chain_order_is_generates_order():
    s = sample(temperature=0.7, top_k=10, top_p=0.9, min_p=0.05, repetition_penalty=1.2)
    chain = sampling.build_chain(s)
    assert [st.name for st in chain] == ["penalties", "temperature", "top-k", "top-p", "min-p"]
    assert [type(st.processor).__name__ for st in chain] == [
        "RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper",
        "MinPLogitsWarper"]
    # greedy skips the warpers, as generate(do_sample=False) does, but keeps the penalty
    g = SamplingSettings(strategy="greedy", temperature=0.7, top_k=10, repetition_penalty=1.2)
    assert [st.name for st in sampling.build_chain(g)] == ["penalties"]
    # neutral values add nothing
    assert sampling.build_chain(sample(temperature=1.0, top_k=0, top_p=1.0)) == []


def test_full_chain_follows_the_order_in_transformers_source():
    """Every processor the lab can build, with every rule on, comes out in the order
    GenerationMixin._get_logits_processor appends them in the installed transformers."""
    import inspect
    import re

    from transformers import GenerationConfig
    from transformers.generation.utils import GenerationMixin

    gc = GenerationConfig(sequence_bias=[[[3], 1.0]], encoder_repetition_penalty=1.2, no_repeat_ngram_size=2,
                          encoder_no_repeat_ngram_size=2, bad_words_ids=[[4]], min_length=3, min_new_tokens=2,
                          forced_bos_token_id=5, forced_eos_token_id=6, remove_invalid_values=True,
                          exponential_decay_length_penalty=(4, 1.1), suppress_tokens=[7],
                          begin_suppress_tokens=[8], typical_p=0.9, epsilon_cutoff=1e-3, eta_cutoff=1e-3)
    rules = sampling.ModelRules(gc, eos_ids=[2], prompt_len=4, encoder_ids=[1, 2, 3, 4])
    s = sample(temperature=0.7, top_k=10, top_p=0.9, min_p=0.05, repetition_penalty=1.2)
    ours = [type(st.processor).__name__ for st in sampling.build_chain(s, rules)]
    assert len(ours) == 21
    source = inspect.getsource(GenerationMixin._get_logits_processor)
    order = [m.group(1) for m in re.finditer(r"\b([A-Z]\w+(?:LogitsProcessor|LogitsWarper|LengthPenalty))\(", source)]
    positions = [order.index(name) for name in ours]
    assert positions == sorted(positions), list(zip(ours, positions))


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    out = torch.softmax(sampling.process(sample(top_k=0, top_p=0.6), None, logits), -1)[0]
    assert out[0] > 0 and out[1] > 0 and out[2] == 0          # 0.5 alone < 0.6: the 0.3 that crosses stays
    assert torch.allclose(out[:2], torch.tensor([0.625, 0.375]))
    stages = sampling.waterfall(sample(top_k=0, top_p=0.6), None, logits)
    tp = {s.name: s for s in stages}["top-p"]
    assert tp.survivors == 2 and tp.removed == 1 and tp.mass_removed == pytest.approx(0.2, abs=1e-6)


def test_top_k_keeps_ties_at_the_edge():
    logits = torch.tensor([[3.0, 2.0, 2.0, 1.0, 0.0]])
    out = sampling.process(sample(top_k=2), None, logits)[0]
    assert torch.isfinite(out).tolist() == [True, True, True, False, False]


def test_waterfall_reports_every_stage_in_order_and_the_mass_removed():
    torch.manual_seed(0)
    logits = torch.randn(1, 300) * 3
    s = sample(temperature=0.7, top_k=40, top_p=0.8, min_p=0.05)
    stages = sampling.waterfall(s, None, logits)
    assert [st.name for st in stages] == list(sampling.ALWAYS_LISTED)
    survivors = [st.survivors for st in stages]
    assert survivors[0] == 300 and survivors[3] == 40 and survivors == sorted(survivors, reverse=True)
    final = torch.softmax(sampling.process(s, None, logits), -1)[0].numpy()
    np.testing.assert_allclose(stages[-1].probs, final, atol=1e-7)
    for st in stages:
        assert st.probs.sum() == pytest.approx(1.0, abs=1e-5)
    k = {st.name: st for st in stages}["top-k"]
    before = {st.name: st for st in stages}["temperature"].probs
    assert k.mass_removed == pytest.approx(float(np.sort(before)[:-40].sum()), abs=1e-5)
    # greedy: warpers listed as not applied
    g = sampling.waterfall(SamplingSettings(strategy="greedy", top_k=5), None, logits)
    assert not any(st.applied for st in g[1:]) and "greedy" in g[3].note


def test_repetition_penalty_uses_the_ids_so_far():
    logits = torch.tensor([[2.0, 2.0, -1.0]])
    ids = torch.tensor([[0, 2]])
    out = sampling.process(SamplingSettings(strategy="greedy", repetition_penalty=2.0), ids, logits)[0]
    assert out.tolist() == [1.0, 2.0, -2.0]
