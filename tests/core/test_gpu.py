"""Every panel's core path on a CUDA GPU. Skipped where there is no CUDA (CI); run on a GPU
machine with `python -m pytest -m gpu tests/core/test_gpu.py` (results in bench/results/)."""
import numpy as np
import pytest

from lab.core import models, trace

pytestmark = pytest.mark.gpu

TEXT = "The teacher taught the students with the book."


@pytest.fixture(scope="module", params=["fp32", "fp16", "bf16"])
def gpu_lm(request, tiny_model_dir):
    return models.load(str(tiny_model_dir("llama")), device="cuda", dtype=request.param)


def test_load_on_gpu_at_each_dtype(gpu_lm):
    assert gpu_lm.device.startswith("cuda")
    assert next(gpu_lm.model.parameters()).is_cuda
    used = models.gpu_memory()
    assert used and used[0][1] > 0 and used[0][2] >= used[0][1]


@pytest.mark.parametrize("kind", ["gpt2", "bert", "t5"])
def test_capture_on_gpu_matches_cpu(tiny_model_dir, kind):
    cpu = trace.capture(models.load(str(tiny_model_dir(kind))), TEXT)
    gpu = trace.capture(models.load(str(tiny_model_dir(kind)), device="cuda"), TEXT)
    for stack in cpu.stacks:
        for layer in range(cpu.layers(stack)):
            for head in range(cpu.heads(stack)):
                np.testing.assert_allclose(gpu.head(stack, layer, head), cpu.head(stack, layer, head), atol=2e-4)


def test_long_capture_keeps_tensors_on_the_gpu(tiny_model_dir):
    lm = models.load(str(tiny_model_dir("t5")), device="cuda")
    tr = trace.capture(lm, "word " * 1000)
    assert any(tr.is_resident(s) for s in tr.stacks)
    assert tr.head("encoder", 0, 0).shape[0] == len(tr.tokens)


def test_logit_lens_on_gpu(tiny_model_dir):
    lm = models.load(str(tiny_model_dir("gpt2")), device="cuda")
    tr = trace.capture(lm, TEXT)
    lens = trace.logit_lens(lm, tr, len(tr.tokens) - 1, k=5)
    assert lens is not None


def test_greedy_decode_on_gpu_matches_generate(tiny_model_dir):
    import torch

    from lab.core.decoding import DecodeSession
    from lab.core.sampling import SamplingSettings

    lm = models.load(str(tiny_model_dir("gpt2")), device="cuda")
    s = DecodeSession(lm, TEXT, SamplingSettings(max_new_tokens=12, stop_at_eos=False))
    for _ in range(12):
        s.step()
    ids = torch.tensor([s.prefix_ids], device="cuda")
    ref = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                            eos_token_id=None, pad_token_id=0)
    assert s.generated_ids() == ref[0, ids.shape[1]:].tolist()


def test_neighbours_on_gpu(tiny_model_dir):
    from lab.core import embeddings

    lm = models.load(str(tiny_model_dir("gpt2")), device="cuda")
    nb = embeddings.neighbours(lm, 5, k=10)
    assert len(nb.items) == 10
    cpu = embeddings.neighbours(models.load(str(tiny_model_dir("gpt2"))), 5, k=10)
    assert [n.id for n in nb.items] == [n.id for n in cpu.items]


def test_onnx_verifies_with_the_cuda_provider_when_present(tiny_model_dir, tmp_path):
    from lab.core import precision

    lm = models.load(str(tiny_model_dir("gpt2")), device="cuda")
    report = precision.convert(lm, tmp_path / "onnx", ("fp32", "fp16"))
    assert report.row("fp32").max_abs_logit_diff < 1e-3
    assert report.row("fp16").nan_count is not None
    assert report.provider        # says which provider ran (CUDA, or CPU said plainly)


def test_real_out_of_memory_is_caught_and_the_model_survives(tiny_model_dir):
    import torch

    from lab.core.errors import DeviceError

    lm = models.load(str(tiny_model_dir("gpt2")), device="cuda")
    free, total = torch.cuda.mem_get_info()
    with pytest.raises(DeviceError, match="Out of memory"):
        with models.device_errors(lm.device):
            torch.empty(int(total * 2), dtype=torch.uint8, device="cuda")
    assert trace.capture(lm, TEXT).stacks == ["self"]
