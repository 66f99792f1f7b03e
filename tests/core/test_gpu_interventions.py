"""The new views' core paths on a CUDA GPU equal their CPU results: ablation and the head
sweep, activation patching, the objectives' per-token loss, the precision twins and a
decode beside a twin. Skipped where there is no CUDA (CI); run on a GPU machine with
`python -m pytest -m gpu tests/core/test_gpu_interventions.py`."""
import numpy as np
import pytest

from lab.core import interventions as iv
from lab.core import models, objectives, sampling
from lab.core.precision import twins

pytestmark = pytest.mark.gpu

TEXT = "The teacher taught the students with the book."


def both(tiny_model_dir, kind):
    path = str(tiny_model_dir(kind))
    return models.load(path), models.load(path, device="cuda")


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "t5"])
def test_ablation_and_sweep_on_gpu_match_cpu(tiny_model_dir, kind):
    cpu, gpu = both(tiny_model_dir, kind)
    heads = iv.parse_heads(cpu, "0.1,1.0")
    a, b = iv.ablate(cpu, TEXT, heads=heads), iv.ablate(gpu, TEXT, heads=heads)
    assert b.kl == pytest.approx(a.kl, abs=1e-4)
    assert b.logp_after - b.logp_before == pytest.approx(a.logp_after - a.logp_before, abs=1e-4)
    sa, sb = iv.sweep(cpu, TEXT), iv.sweep(gpu, TEXT)
    for stack in sa.maps:
        np.testing.assert_allclose(np.asarray(sb.maps[stack]), np.asarray(sa.maps[stack]), atol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_patching_on_gpu_matches_cpu(tiny_model_dir, kind):
    cpu, gpu = both(tiny_model_dir, kind)
    args = ("The cat sat on the mat", "The dog sat on the mat", " cat", " dog")
    for site in ("resid", "attn", "mlp"):
        a, b = iv.patch(cpu, *args, site=site), iv.patch(gpu, *args, site=site)
        np.testing.assert_allclose(b.map, a.map, atol=1e-3)


@pytest.mark.parametrize("kind", ["gpt2", "bert", "t5"])
def test_objective_losses_on_gpu_match_cpu(tiny_model_dir, kind):
    cpu, gpu = both(tiny_model_dir, kind)
    target = "the book" if kind == "t5" else None
    a, b = objectives.analyse(cpu, TEXT, target), objectives.analyse(gpu, TEXT, target)
    assert b.loss.mean_nats == pytest.approx(a.loss.mean_nats, abs=1e-4)
    assert [e.to_dict() if hasattr(e, "to_dict") else e for e in b.examples] == \
        [e.to_dict() if hasattr(e, "to_dict") else e for e in a.examples]


@pytest.mark.parametrize("spec", ["fp16", "bf16"])
def test_twins_and_decode_compare_on_gpu(tiny_model_dir, spec):
    import torch

    from lab.core.decoding import DecodeComparer, DecodeSession

    _, gpu = both(tiny_model_dir, "gpt2")
    twin = twins.open_twin(gpu.model, gpu.tokenizer, spec)
    assert twin.device.startswith("cuda")
    ids = torch.tensor([gpu.tokenizer(TEXT)["input_ids"]])
    direct = twin.model(input_ids=ids.cuda(), attention_mask=torch.ones_like(ids).cuda()).logits.float().cpu()
    assert torch.equal(twin.logits(ids), direct)
    dec = DecodeSession(gpu, "The cat", sampling.SamplingSettings(strategy="greedy", max_new_tokens=5,
                                                                  stop_at_eos=False))
    dec.run()
    cmp = DecodeComparer(twin).compare(dec)
    assert len(cmp.steps) == 5 and cmp.agreement is not None and all(s.kl >= 0 for s in cmp.steps)
