"""`tvlab bench`: the suites it offers, the two-GPU split proof's report, and the model
builder the benchmarks share with the tests."""
import json

import pytest


def test_unknown_suite_names_every_benchmark(tvlab, one_line_error):
    line = one_line_error(tvlab("bench", "no-such-suite"))
    for name in ("attention", "convert", "decode", "tokens", "ui", "zoo", "split"):
        assert name in line
    assert "tiny_models" not in line


def test_split_proof_without_two_gpus_writes_its_report_and_fails(tvlab, tmp_path):
    import torch

    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine can run the real proof (tvlab bench split)")
    out = tmp_path / "results" / "split.json"
    proc = tvlab("bench", "split", "--out", out)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(out.read_text())
    assert report["error"] == "needs two GPUs" and report["ok"] is False
    assert json.loads(proc.stdout) == report


def test_tiny_models_take_sizes_and_a_tokenizer(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from lab.bench import tiny_models

    tok = tiny_models.byte_bpe_tokenizer(["a small text to train on, twice."] * 5, vocab_size=300)
    folder = tiny_models.build("gpt2", tmp_path / "m", tokenizer=tok, n_layer=3, n_embd=48)
    cfg = AutoConfig.from_pretrained(folder)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head) == (3, 48, 4)
    assert cfg.vocab_size == len(AutoTokenizer.from_pretrained(folder)) == len(tok)
    with pytest.raises(ValueError):
        tiny_models.build("rnn", tmp_path / "x")
