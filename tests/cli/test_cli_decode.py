"""tvlab decode end to end: JSON shape, equality with generate(), bad values."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tvlab(*args):
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_decode_json_matches_generate(tiny_gpt2, loaded):
    r = tvlab("decode", "--model", str(tiny_gpt2), "--prompt", "The cat sat", "--strategy", "sample",
              "--temperature", "0.8", "--top-k", "30", "--top-p", "0.9", "--seed", "4", "--max-new-tokens", "6",
              "--no-stop-at-eos", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("model", "prompt_ids", "generated_ids", "text", "steps", "ms_per_step"):
        assert key in out
    assert len(out["generated_ids"]) == 6 and len(out["steps"]) == 6
    step = out["steps"][0]
    assert set(step) >= {"token_id", "token", "candidates"}
    assert len(step["candidates"]) >= 20
    assert set(step["candidates"][0]) == {"id", "token", "raw_prob", "prob"}
    assert step["token_id"] in [c["id"] for c in step["candidates"]]
    for s in out["steps"]:   # the chosen token was possible after the processors; raw and processed differ
        chosen = next(c for c in s["candidates"] if c["id"] == s["token_id"])
        assert chosen["prob"] > 0 and sum(c["prob"] for c in s["candidates"]) <= 1.0 + 1e-6
        assert any(abs(c["prob"] - c["raw_prob"]) > 1e-4 for c in s["candidates"])

    import torch

    lm = loaded("gpt2")
    ids = torch.tensor([out["prompt_ids"]])
    torch.manual_seed(4)
    ref = lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.8, top_k=30,
                            top_p=0.9, max_new_tokens=6, eos_token_id=None, pad_token_id=0)
    assert out["generated_ids"] == ref[0].tolist()[len(out["prompt_ids"]):]


def test_decode_text_output_and_seq2seq(tiny_t5):
    r = tvlab("decode", "--model", str(tiny_t5), "--prompt", "The cat", "--max-new-tokens", "3")
    assert r.returncode == 0, r.stderr
    assert "stopped:" in r.stdout


@pytest.mark.parametrize("flag,value", [("--top-p", "0"), ("--top-p", "1.5"), ("--top-k", "-1"),
                                        ("--temperature", "-0.5"), ("--max-new-tokens", "0")])
def test_bad_values_exit_2_with_one_line(flag, value):
    args = ["decode", "--model", "zoo:does-not-matter", "--prompt", "x", "--max-new-tokens", "4", flag, value]
    r = tvlab(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tvlab: error:")


def test_empty_prompt_without_bos_is_refused(tmp_path, tiny_gpt2):
    import shutil

    folder = tmp_path / "nobos"
    shutil.copytree(tiny_gpt2, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["bos_token_id"] = None
    (folder / "config.json").write_text(json.dumps(cfg))
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    tc["bos_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    gc = folder / "generation_config.json"
    if gc.exists():
        g = json.loads(gc.read_text())
        g.pop("bos_token_id", None)
        gc.write_text(json.dumps(g))
    r = tvlab("decode", "--model", str(folder), "--prompt", "", "--max-new-tokens", "2")
    assert r.returncode == 2 and "empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ok = tvlab("decode", "--model", str(tiny_gpt2), "--prompt", "", "--max-new-tokens", "2", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["prompt_ids"] == [0]


def test_fill_mask_through_the_cli(tiny_bert):
    r = tvlab("decode", "--model", str(tiny_bert), "--prompt", "the cat sat on the [MASK] .", "--max-new-tokens", "1",
              "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "[MASK]" not in out["text"] and len(out["steps"]) == 1 and len(out["steps"][0]["candidates"]) >= 20
