"""`tvlab ablate` and `tvlab patch` end to end (in process: the shell's parser and errors)."""
import json

import numpy as np
import pytest

from lab.cli import main
from lab.core import interventions as iv

TEXT = "The cat sat on the mat."


def test_ablate_json_with_sweep(tiny_gpt2, loaded, capsys):
    rc = main(["ablate", "--model", str(tiny_gpt2), "--text", TEXT, "--heads", "0.1,1.2", "--mlp", "1",
               "--kind", "mean", "--sweep", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    lm = loaded("gpt2")
    ref = iv.ablate(lm, TEXT, heads=[("self", 0, 1), ("self", 1, 2)], mlp=[("self", 1)], kind="mean")
    ab = report["ablation"]
    assert ab["delta_logp"] == pytest.approx(ref.delta_logp, abs=1e-6)
    assert ab["kl"] == pytest.approx(ref.kl, abs=1e-6) and len(ab["top"]) == 10
    assert ab["heads"] == [["self", 0, 1], ["self", 1, 2]] and ab["mlp_blocks"] == [["self", 1]]
    sweep = iv.sweep(lm, TEXT, kind="mean")
    np.testing.assert_allclose(report["sweep"]["maps"]["self"], sweep.maps["self"], atol=1e-5)


def test_patch_json_and_text(tiny_gpt2, capsys):
    args = ["patch", "--model", str(tiny_gpt2), "--clean", TEXT, "--corrupt", TEXT.replace("cat", "dog"),
            "--answer", " the", "--wrong", " cat", "--site", "attn"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["site"] == "attn" and np.asarray(report["map"]).shape == (2, len(report["clean_tokens"]))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 = corrupted, 1 = clean" in out and out.count("\n") >= 4


@pytest.mark.parametrize("argv, message", [
    (["ablate", "--heads", "0.9"], "out of range"),
    (["ablate", "--heads", "x"], "LAYER.HEAD"),
    (["ablate"], "Nothing is selected"),
    (["patch", "--clean", TEXT, "--corrupt", "A dog sat on a big old mat.", "--answer", "a", "--wrong", "b"],
     "align on the shorter"),
])
def test_bad_input_is_one_line(tiny_gpt2, tvlab, one_line_error, argv, message):
    cmd, *rest = argv
    if cmd == "ablate":
        rest = ["--text", TEXT, *rest]
    line = one_line_error(tvlab(cmd, "--model", tiny_gpt2, *rest))
    assert message.lower() in line.lower()
