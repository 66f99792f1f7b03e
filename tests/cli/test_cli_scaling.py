"""`tvlab scaling` and `tvlab memory` end to end, as a user runs them."""
import json
import subprocess
import sys

import pytest

FIELDS = {"law", "compute_flops", "pf_days", "params", "tokens", "tokens_per_param", "loss"}


def tvlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("law", ["kaplan", "chinchilla-1", "chinchilla-3", "epoch"])
def test_optimal_json_fields(law):
    r = tvlab("scaling", "optimal", "--compute", "5.76e23", "--law", law, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == FIELDS
    assert out["law"] == law and out["compute_flops"] == 5.76e23
    assert out["pf_days"] == pytest.approx(5.76e23 / 8.64e19)
    assert 6 * out["params"] * out["tokens"] == pytest.approx(5.76e23)
    if law == "chinchilla-1":
        assert out["tokens_per_param"] == pytest.approx(20)
        assert out["params"] == pytest.approx(70e9, rel=0.03)


def test_loss_json_and_human_output():
    r = tvlab("scaling", "loss", "--params", "70e9", "--tokens", "1.4e12", "--law", "chinchilla-3", "--json")
    out = json.loads(r.stdout)
    assert out["loss"] == pytest.approx(1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)
    h = tvlab("scaling", "loss", "--params", "70B", "--tokens", "1.4T", "--law", "chinchilla-3", "--arithmetic")
    assert h.returncode == 0 and f"{out['loss']:.4f}" in h.stdout and "406.4" in h.stdout


def test_fit_json_lists_bad_rows(tmp_path):
    from lab.core import scaling as sc
    runs = sc.synthetic_runs("chinchilla-3", n=40, noise=0.005, seed=7)
    p = tmp_path / "runs.csv"
    rows = ["# my sweep", "params,tokens,loss"] + [f"{n:.6g},{d:.6g},{l:.6g}"
                                                   for n, d, l in zip(runs.params, runs.tokens, runs.loss)]
    p.write_text("\n".join(rows + ["1e9,,3.0", "1e9,1e10,-2", "x,1e9,2"]) + "\n")
    r = tvlab("scaling", "fit", str(p), "--bootstrap", "10", "--starts", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["constants"]) == {"E", "A", "B", "alpha", "beta"}
    assert all(lo <= out["constants"][k] <= hi for k, (lo, hi) in out["intervals"].items())
    assert out["n_runs"] == 40 and [b["line"] for b in out["bad_rows"]] == [43, 44, 45]
    h = tvlab("scaling", "fit", str(p), "--bootstrap", "0", "--starts", "4")
    assert h.returncode == 0 and "3 bad rows skipped" in h.stdout


def test_memory_json_is_the_breakdown():
    r = tvlab("memory", "--params", "1e9", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["weights_bytes"]["fp32"] == 4e9 and out["weights_bytes"]["int4"] == 5e8
    t = out["training"]
    assert t["model_states_bytes"] == 16e9 and t["adam_bytes"]["total"] == 12e9
    # no shape given: activations from the typical shape, which the JSON names
    shape = out["activations"]["shape"]
    assert (shape["layers"], shape["d_model"], shape["heads"], shape["seq"], shape["batch"]) == (24, 2048, 16, 2048, 1)
    assert t["activations_bytes"] == out["activations"]["bytes"] > 0
    assert t["total_bytes"] == 16e9 + t["activations_bytes"]
    assert out["course_example"]["rule_of_thumb_bytes"] == 24e9
    r = tvlab("memory", "--params", "1e9", "--no-activations", "--json")
    assert json.loads(r.stdout)["training"]["total_bytes"] == 16e9
    r = tvlab("memory", "--params", "1B", "--layers", "24", "--hidden", "2048", "--heads", "16",
              "--gpu-memory", "24e9", "--json")
    out = json.loads(r.stdout)
    assert out["training"]["activations_bytes"] > 0
    assert out["fits"]["training"]["fits"] is False and out["fits"]["inference"]["fits"] is True
    assert out["verdict"] == {"inference": "fits", "training": "does not fit"}


def test_memory_verdict_for_the_course_example_is_never_fits():
    """1B on 16 GB: the verdict per mode in --json, the same words on the terminal."""
    r = tvlab("memory", "--params", "1e9", "--gpu-memory", "16e9", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] == {"inference": "fits", "training": "does not fit"}
    assert out["fits"]["training"]["verdict"].startswith("does not fit")       # keeps the old fields
    assert out["activations"]["shape"]["source"] == "typical"
    r = tvlab("memory", "--params", "1e9", "--gpu-memory", "16e9", "--no-activations", "--json")
    out = json.loads(r.stdout)
    assert out["verdict"]["training"] == "unknown" and out["fits"]["training"]["fits"] is None
    text = tvlab("memory", "--params", "1e9", "--gpu-memory", "16 GB", "--layers", "24", "--d-model", "2048",
                 "--heads", "16", "--seq", "1024").stdout
    assert "Fits on the device (training): does not fit" in text and "24 GB" in text
    assert "the given shape: 24 layers, d_model 2048" in text and "batch 1 x 1024 tokens" in text


@pytest.mark.parametrize("args", [
    ["scaling", "optimal", "--compute", "abc", "--json"],
    ["scaling", "optimal", "--compute", "-5"],
    ["scaling", "optimal", "--compute", "1e20", "--law", "gpt"],
    ["scaling", "optimal"],
    ["scaling", "loss", "--params", "0", "--tokens", "1e9"],
    ["scaling", "fit", "/no/such/file.csv"],
    ["memory", "--params", "lots"],
    ["memory", "--params", "1e9", "--layers", "12"],
    ["memory", "--params", "1e9", "--precision", "fp64"],
])
def test_bad_input_is_one_line_and_nonzero(args):
    r = tvlab(*args)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("tvlab: error:") and "Traceback" not in r.stderr


def test_fit_with_too_few_good_rows_is_one_line(tmp_path):
    p = tmp_path / "few.csv"
    p.write_text("params,tokens,loss\n1e8,1e9,3\n2e8,2e9,2.9\nbad,1,1\n")
    r = tvlab("scaling", "fit", str(p))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "at least" in r.stderr
