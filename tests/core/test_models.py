"""Loading is safe and offline, and every bad reference gets one clear message."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lab.core import models
from lab.core.errors import DeviceError, InputError, ModelLoadError


@pytest.mark.parametrize("kind,expected,arch", [
    ("gpt2", models.KIND_DECODER, "GPT2LMHeadModel"),
    ("llama", models.KIND_DECODER, "LlamaForCausalLM"),
    ("bert", models.KIND_ENCODER, "BertForMaskedLM"),
    ("t5", models.KIND_SEQ2SEQ, "T5ForConditionalGeneration"),
])
def test_each_kind_loads_with_the_right_head(tiny_model_dir, kind, expected, arch):
    lm = models.load(str(tiny_model_dir(kind)))
    assert lm.kind == expected
    assert lm.card.architecture == arch
    assert lm.card.params == sum(p.numel() for p in lm.model.parameters())
    assert lm.card.param_bytes >= lm.card.params * 4
    assert lm.card.layers == 2 and lm.card.heads == 4
    assert not lm.model.training


def test_card_reports_grouped_query_heads(tiny_llama):
    card = models.load(str(tiny_llama)).card
    assert (card.heads, card.kv_heads) == (4, 2)


def test_lab_import_switches_hub_offline():
    code = "import os; os.environ.pop('HF_HUB_OFFLINE', None); import lab; print(os.environ['HF_HUB_OFFLINE'])"
    env = {k: v for k, v in __import__('os').environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "1"


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.load(str(tmp_path / "nope"))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        models.load(str(tmp_path))


def test_unknown_hub_id_is_not_fetched():
    with pytest.raises(ModelLoadError, match="local Hugging Face cache"):
        models.load("someone/not-a-cached-model")


def test_unknown_zoo_name():
    with pytest.raises(ModelLoadError, match="No bundled model"):
        models.load("zoo:does-not-exist")


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_unsupported_architecture(tiny_gpt2, tmp_path):
    folder = _copy(tiny_gpt2, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "my-secret-arch"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="not one this version of transformers knows"):
        models.load(str(folder))


def test_remote_code_is_refused_and_never_run(tiny_gpt2, tmp_path):
    folder = _copy(tiny_gpt2, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(ModelLoadError, match="never runs code"):
        models.load(str(folder))
    assert not marker.exists()


def test_truncated_safetensors(tiny_gpt2, tmp_path):
    folder = _copy(tiny_gpt2, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        models.load(str(folder))


def test_safetensors_with_trailing_bytes(tiny_gpt2, tmp_path):
    folder = _copy(tiny_gpt2, tmp_path / "m")
    with open(folder / "model.safetensors", "ab") as f:
        f.write(b"\0" * 16)
    with pytest.raises(ModelLoadError, match="model.safetensors is truncated or corrupt"):
        models.load(str(folder))


def test_garbage_safetensors(tiny_gpt2, tmp_path):
    folder = _copy(tiny_gpt2, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        models.load(str(folder))


def test_pickled_weights_load_with_weights_only(tiny_gpt2, tmp_path):
    import torch

    folder = _copy(tiny_gpt2, tmp_path / "m")
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    lm = models.load(str(folder))
    assert lm.card.params > 0


def test_cuda_request_without_gpu_falls_back_with_note(tiny_gpt2):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    lm = models.load(str(tiny_gpt2), device="cuda")
    assert lm.device == "cpu"
    assert any("not available" in n for n in lm.card.notes)


def test_fp16_on_cpu_is_allowed_with_a_note(tiny_gpt2):
    lm = models.load(str(tiny_gpt2), dtype="fp16")
    assert lm.card.dtype == "fp16"
    assert any("slow" in n for n in lm.card.notes)


def test_unknown_dtype():
    with pytest.raises(InputError):
        models.choose_device("cpu", "fp8")


def test_out_of_memory_becomes_a_clear_device_error():
    import torch

    with pytest.raises(DeviceError, match="Out of memory.*smaller dtype.*still usable"):
        with models.device_errors("cuda:0"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_driver_failure_becomes_a_device_error():
    with pytest.raises(DeviceError, match="failed"):
        with models.device_errors("cuda:0"):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_cache_listing_never_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert isinstance(models.cached_models(), list)


def test_split_without_gpus_falls_back_to_cpu_with_a_note(tiny_gpt2):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    lm = models.load(str(tiny_gpt2), device=models.SPLIT, max_memory={"cpu": "1GiB"})
    assert lm.device == "cpu"
    assert any("needs CUDA GPUs" in n for n in lm.card.notes)


def test_max_memory_parsing():
    assert models.parse_max_memory("0=2GiB, 1=3GiB,cpu=10GiB") == {0: "2GiB", 1: "3GiB", "cpu": "10GiB"}
    assert models.parse_max_memory("") == {}
    with pytest.raises(InputError):
        models.parse_max_memory("0:2GiB")


def test_device_map_summary_groups_modules_by_device():
    summary = models.device_map_summary({"model.embed": "0", "model.layers.0": "0", "model.layers.1": "1", "lm_head": "cpu"})
    assert summary == {"cuda:0": ["model.embed", "model.layers.0"], "cuda:1": ["model.layers.1"], "cpu": ["lm_head"]}


@pytest.mark.gpu
def test_split_across_two_gpus_matches_unsplit(tiny_llama):
    """Runs on a machine with >= 2 GPUs (`tvlab bench split` is the big-model proof)."""
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    from lab.core import trace

    whole = models.load(str(tiny_llama), device="cuda:0")
    # the tiny model holds ~180 KB of weights: a 100 KiB cap on GPU 0 forces a split
    split = models.load(str(tiny_llama), device=models.SPLIT, max_memory={0: "100KiB", 1: "1GiB"})
    assert len(set(split.card.device_map.values())) >= 2
    a = trace.capture(whole, "The teacher taught the students with the book.")
    b = trace.capture(split, "The teacher taught the students with the book.")
    np.testing.assert_allclose(np.asarray(a.attentions["self"], np.float32), np.asarray(b.attentions["self"], np.float32), atol=1e-5)


def test_a_bare_encoder_gets_no_invented_lm_head(tiny_bert, tmp_path):
    folder = _copy(tiny_bert, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(cfg))
    lm = models.load(str(folder))
    assert lm.kind == models.KIND_ENCODER
    assert lm.card.architecture == "BertModel"


def _fake_hub_cache(root, repo_id, model_folder):
    """Lay out a model the way huggingface_hub's cache does (blobs, snapshots, refs)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / rev
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    for i, f in enumerate(sorted(model_folder.iterdir())):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(blob)
    return snap


def test_models_in_the_local_hub_cache_are_listed_and_load_by_id(tiny_gpt2, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-gpt2", tiny_gpt2)
    import huggingface_hub  # noqa: F401  (imported before the variable is set, as in a long session)

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    listed = {c.repo_id: c for c in models.cached_models()}
    assert "someone/tiny-gpt2" in listed and listed["someone/tiny-gpt2"].size_bytes > 0
    lm = models.load("someone/tiny-gpt2")
    assert lm.card.source == "cache" and lm.kind == models.KIND_DECODER


def test_a_hub_id_resolves_to_refs_main_without_scanning_the_cache(tiny_gpt2, tmp_path, monkeypatch):
    import os

    import huggingface_hub

    cache = tmp_path / "hub"
    main = _fake_hub_cache(cache, "someone/tiny-gpt2", tiny_gpt2)
    newer = main.parent / ("f" * 40)          # a newer snapshot that refs/main does not point at
    shutil.copytree(main, newer, symlinks=True)
    os.utime(newer, (main.stat().st_mtime + 100, main.stat().st_mtime + 100))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert {c.repo_id: c.path for c in models.cached_models()}["someone/tiny-gpt2"] == main

    def no_scan(*args, **kwargs):
        raise AssertionError("resolving one id scanned the whole cache")

    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", no_scan)
    assert models.resolve("someone/tiny-gpt2") == (main, "cache")
    with pytest.raises(ModelLoadError, match="neither a folder nor a model in the local Hugging Face cache"):
        models.resolve("someone/not-cached")


def test_a_pickle_that_would_run_code_is_refused_with_what_to_do(tiny_gpt2, tmp_path):
    import torch

    folder = _copy(tiny_gpt2, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    torch.save({"x": _RunsCode(str(marker))}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        models.load(str(folder))
    text = str(err.value)
    assert not marker.exists()
    assert "weights_only" not in text and "False" not in text
    assert "pickle checkpoint" in text and "pytorch_model.bin" in text and "safetensors" in text
    assert text.endswith("then open the converted folder.")


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))
