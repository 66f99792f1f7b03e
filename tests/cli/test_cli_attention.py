"""`tvlab attention` end to end (in process: the same parser and error handling as the shell)."""
import json

import numpy as np
import pytest

from lab.cli import main

TEXT = "The teacher taught the students with the book."


def test_decoder_only_npz_and_json(tiny_gpt2, tmp_path, capsys):
    out = tmp_path / "a.npz"
    rc = main(["attention", "--model", str(tiny_gpt2), "--text", TEXT, "--npz", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    data = np.load(out)   # no pickle needed
    assert set(data.files) == {"tokens", "self"}
    a = data["self"]
    assert a.dtype == np.float32 and a.shape == (2, 4, len(data["tokens"]), len(data["tokens"]))
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    assert np.all(a[:, :, np.triu(np.ones(a.shape[2:], bool), 1)] == 0)
    info = report["stacks"]["self"]
    assert info["shape"] == list(a.shape) and info["causal"] is True
    assert len(info["layers"]) == 2 and len(info["layers"][0]["mean_entropy_per_head"]) == 4
    p = a[1, 2]
    ent = float(np.mean(-np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1)))
    assert info["layers"][1]["mean_entropy_per_head"][2] == pytest.approx(ent, abs=1e-4)
    assert report["tokens"] == list(data["tokens"])


def test_encoder_decoder_writes_three_stacks(tiny_t5, tmp_path, capsys):
    out = tmp_path / "t5.npz"
    rc = main(["attention", "--model", str(tiny_t5), "--text", TEXT, "--target", "the book", "--npz", str(out)])
    assert rc == 0
    data = np.load(out)
    assert set(data.files) == {"tokens", "target_tokens", "encoder", "decoder", "cross"}
    S, T = len(data["tokens"]), len(data["target_tokens"])
    assert data["encoder"].shape[2:] == (S, S)
    assert data["decoder"].shape[2:] == (T, T)
    assert data["cross"].shape[2:] == (T, S)
    assert all(data[k].dtype == np.float32 for k in ("encoder", "decoder", "cross"))
    assert "wrote" in capsys.readouterr().out


def test_encoder_only_has_self(tiny_bert, tmp_path):
    out = tmp_path / "b.npz"
    assert main(["attention", "--model", str(tiny_bert), "--text", TEXT, "--npz", str(out)]) == 0
    data = np.load(out)
    assert set(data.files) == {"tokens", "self"} and data["tokens"][0] == "[CLS]"


def test_one_head_and_out_of_range(tiny_gpt2, capsys):
    rc = main(["attention", "--model", str(tiny_gpt2), "--text", TEXT, "--layer", "1", "--head", "3", "--json"])
    assert rc == 0
    head = json.loads(capsys.readouterr().out)["head"]
    assert (head["layer"], head["head"]) == (1, 3) and len(head["weights"]) == len(head["top_key_per_query"])
    for args in (["--layer", "2"], ["--head", "4"], ["--layer", "-1"]):
        rc = main(["attention", "--model", str(tiny_gpt2), "--text", TEXT, "--json", *args])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "out of range" in err


def test_long_input_is_truncated_with_a_warning(tiny_gpt2, tmp_path, capsys):
    out = tmp_path / "long.npz"
    rc = main(["attention", "--model", str(tiny_gpt2), "--text", "the book " * 100, "--npz", str(out)])
    assert rc == 0
    assert "warning" in capsys.readouterr().err
    assert np.load(out)["self"].shape[2] == 64


def test_target_on_decoder_only_is_ignored_with_a_note(tiny_gpt2, capsys):
    rc = main(["attention", "--model", str(tiny_gpt2), "--text", TEXT, "--target", "x", "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "ignored" in captured.err and "target_tokens" not in json.loads(captured.out)


def test_unwritable_npz_is_one_line(tiny_gpt2, tmp_path, capsys):
    rc = main(["attention", "--model", str(tiny_gpt2), "--text", TEXT, "--npz", str(tmp_path / "nope" / "a.npz")])
    assert rc == 2 and capsys.readouterr().err.count("\n") == 1
