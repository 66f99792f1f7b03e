"""tvlab decode --compare end to end: the JSON equals the core's comparison; bad values exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tvlab(*args):
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_compare_json_equals_the_core(tiny_gpt2, loaded):
    r = tvlab("decode", "--model", str(tiny_gpt2), "--prompt", "The cat sat", "--strategy", "greedy",
              "--max-new-tokens", "4", "--no-stop-at-eos", "--compare", "bf16", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cmp = out["compare"]
    assert cmp["compare"] == "torch bf16" and "re-reads the whole sequence" in cmp["note"]
    assert len(cmp["steps"]) == 4
    assert [s["token_id"] for s in cmp["steps"]] == out["generated_ids"]
    step = cmp["steps"][0]
    assert set(step) >= {"main_top", "compare_top", "kl", "agree", "compare_choice", "compare_prob_of_token"}
    assert len(step["main_top"]) == 5 and len(step["compare_top"]) == 5

    from lab.core import sampling
    from lab.core.decoding import DecodeComparer, DecodeSession
    from lab.core.precision import twins

    lm = loaded("gpt2")
    dec = DecodeSession(lm, "The cat sat", sampling.SamplingSettings(strategy="greedy", max_new_tokens=4,
                                                                      stop_at_eos=False))
    dec.run()
    want = DecodeComparer(twins.open_twin(lm.model, lm.tokenizer, "bf16")).compare(dec).to_dict()
    assert cmp["agreement"] == want["agreement"] and cmp["first_divergence"] == want["first_divergence"]
    for got, ref in zip(cmp["steps"], want["steps"]):
        assert [t["id"] for t in got["compare_top"]] == [t["id"] for t in ref["compare_top"]]
        assert got["kl"] == pytest.approx(ref["kl"], rel=1e-6, abs=1e-12)
        assert got["agree"] == ref["agree"] and got["compare_choice"] == ref["compare_choice"]


def test_compare_text_output(tiny_t5):
    r = tvlab("decode", "--model", str(tiny_t5), "--prompt", "The cat", "--max-new-tokens", "3",
              "--no-stop-at-eos", "--compare", "fp16")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("compare with torch fp16") for line in lines)
    assert sum("KL=" in line for line in lines) == 3
    assert any(line.startswith("top-1 agreement:") for line in lines)


@pytest.mark.parametrize("value", ["int3", "missing-file.onnx"])
def test_bad_compare_exits_2_before_loading(value):
    r = tvlab("decode", "--model", "zoo:does-not-exist", "--prompt", "x", "--max-new-tokens", "2", "--compare", value)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvlab: error:")
    assert ("Unknown --compare" in lines[0]) if value == "int3" else ("No ONNX file" in lines[0])
    assert "does-not-exist" not in r.stderr          # refused before the model was looked up


def test_unreadable_onnx_file_exits_2(tiny_gpt2, tmp_path):
    bad = tmp_path / "model-int8.onnx"
    bad.write_bytes(b"not an onnx graph")
    r = tvlab("decode", "--model", str(tiny_gpt2), "--prompt", "x", "--max-new-tokens", "2", "--compare", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open" in lines[0]


def test_compare_with_an_encoder_only_model_exits_2(tiny_bert):
    r = tvlab("decode", "--model", str(tiny_bert), "--prompt", "The [MASK] sat", "--max-new-tokens", "2",
              "--compare", "fp16")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "encoder-only" in lines[0]
