"""A decode beside the same model at another precision (lab.core.decoding.compare): every
compared step equals a direct forward of the comparison model on the same ids."""
import copy

import numpy as np
import pytest
import torch

from lab.core import sampling
from lab.core.decoding import DecodeComparer, DecodeSession
from lab.core.precision import twins

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
GREEDY = sampling.SamplingSettings(strategy="greedy", max_new_tokens=6, stop_at_eos=False)


def direct_logprobs(model, spec, ids, dec=None):
    """log-softmax of the last position, from a fresh copy of the model at ``spec``."""
    m = copy.deepcopy(model).to(DTYPES[spec]).eval()
    kw = dict(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    if dec is not None:
        kw["decoder_input_ids"] = torch.tensor([dec])
    with torch.no_grad():
        return torch.log_softmax(m(**kw).logits[0, -1].float().double(), -1)


@pytest.mark.parametrize("kind,prompt", [("gpt2", "The cat sat"), ("t5", "translate: the cat")])
@pytest.mark.parametrize("spec", ["fp16", "bf16"])
def test_each_compared_step_equals_a_direct_forward(loaded, kind, prompt, spec):
    lm = loaded(kind)
    dec = DecodeSession(lm, prompt, GREEDY)
    dec.run()
    cmp = DecodeComparer(twins.open_twin(lm.model, lm.tokenizer, spec)).compare(dec)
    path = dec.path()
    assert [s.node_id for s in cmp.steps] == [n.id for n in path]
    assert cmp.label == f"torch {spec}" and "re-reads the whole sequence" in cmp.note
    for s, node in zip(cmp.steps, path):
        ids = dec.path_ids(node.parent)
        if dec.seq2seq:
            want = direct_logprobs(lm.model, spec, dec.encoder_ids, ids)
        else:
            want = direct_logprobs(lm.model, spec, ids)
        p = want.exp()
        top_p, top_i = p.topk(5)
        assert [t[0] for t in s.twin_top] == top_i.tolist()
        assert np.allclose([t[2] for t in s.twin_top], top_p.numpy(), rtol=0, atol=1e-12)
        main = torch.log_softmax(dec.logits_after(node.parent)[0].double(), -1)
        assert s.kl == pytest.approx(float((main.exp() * (main - want)).sum().clamp_min(0)), abs=1e-12)
        assert s.agree == (int(main.argmax()) == int(want.argmax()))
        assert s.twin_prob_of_token == pytest.approx(float(p[node.token_id]), abs=1e-12)
        assert s.token_id == node.token_id and s.step == node.depth and s.greedy
    assert cmp.pending is None                 # max new tokens reached
    assert cmp.agreement == sum(s.agree for s in cmp.steps) / len(cmp.steps)


def test_the_same_precision_agrees_everywhere_and_never_diverges(loaded):
    lm = loaded("gpt2")
    dec = DecodeSession(lm, "to be or", GREEDY.with_(max_new_tokens=8))
    dec.run()
    cmp = DecodeComparer(twins.open_twin(lm.model, lm.tokenizer, "fp32")).compare(dec)
    assert cmp.agreement == 1.0 and cmp.first_divergence is None
    assert all(s.kl < 1e-9 and s.twin_choice == s.token_id for s in cmp.steps)


class SwappedTwin:
    """A comparison model that is the model itself, except that from step ``at`` on its
    favourite token is another one: a greedy decode of it leaves the path exactly there."""

    label, spec, device, note, kind = "swapped", "test", "cpu", "", "decoder-only"

    def __init__(self, model, prompt_len, at):
        self.model, self.prompt_len, self.at, self.calls = model, prompt_len, at, 0

    def logits(self, ids, dec=None):
        self.calls += 1
        ids = torch.tensor(ids)
        with torch.no_grad():
            out = self.model(input_ids=ids).logits.float()
        step = ids.shape[1] - self.prompt_len + 1
        if step >= self.at:
            last = out[0, -1]
            second = int(last.topk(2).indices[1])
            last[second] = last.max() + 5.0
        return out

    def close(self):
        pass


def test_first_divergence_is_the_first_greedy_step_the_twin_picks_otherwise(loaded):
    lm = loaded("gpt2")
    dec = DecodeSession(lm, "The king", GREEDY)
    twin = SwappedTwin(lm.model, len(dec.prefix_ids), at=3)
    comparer = DecodeComparer(twin)
    dec.step()
    dec.step()
    first = comparer.compare(dec)
    assert first.first_divergence is None and first.pending is not None and first.pending.step == 0
    assert twin.calls == 3                      # two chosen steps and the pending one
    dec.run()
    cmp = comparer.compare(dec)
    assert twin.calls == 3 + 3                  # step 3 was the pending one: only steps 4-6 are new
    assert cmp.first_divergence == 3
    assert [s.agree for s in cmp.steps] == [True, True, False, False, False, False]
    assert cmp.agreement == pytest.approx(2 / 6)


def test_onnx_comparison_runs_the_converters_file(loaded, tmp_path):
    from lab.core import precision

    lm = loaded("gpt2")
    precision.convert(lm, tmp_path, ("fp32",), force=True, latency_runs=1)
    dec = DecodeSession(lm, "Dog bites", GREEDY.with_(max_new_tokens=4))
    dec.run()
    cmp = DecodeComparer(twins.open_twin(lm.model, lm.tokenizer, tmp_path / "model-fp32.onnx")).compare(dec)
    assert cmp.spec == "onnx" and cmp.agreement == 1.0 and cmp.first_divergence is None
    assert max(s.kl for s in cmp.steps) < 1e-6
