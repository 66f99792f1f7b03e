"""Scaling laws: published figures, allocation algebra, CSV reading, the Chinchilla-style fit."""
import math

import numpy as np
import pytest

from lab.core import scaling as sc
from lab.core.errors import Cancelled, InputError
from lab.core.jobs import Job


def rel(a, b):
    return abs(a - b) / abs(b)


# ---------------------------------------------------------------- published figures

def test_gpt3_compute_and_pf_days():
    C = sc.training_flops(175e9, 300e9)
    assert rel(C, 3.14e23) < 0.005
    assert rel(sc.flops_to_pf_days(C), 3640) < 0.005
    # GPT-3's own reported budget converts to ~3,640 PF-days too
    assert rel(sc.flops_to_pf_days(3.14e23), 3640) < 0.005
    assert sc.pf_days_to_flops(1.0) == pytest.approx(8.64e19)


def test_chinchilla_is_about_20_tokens_per_param():
    v = sc.verdict("chinchilla-1", 70e9, 1.4e12)
    assert v.tokens_per_param == pytest.approx(20.0)
    assert v.label == "about compute-optimal"
    a = sc.optimal("chinchilla-1", 5.76e23)
    assert a.tokens_per_param == pytest.approx(20.0)
    assert rel(a.params, 70e9) < 0.03 and rel(a.tokens, 1.4e12) < 0.03


def test_approach3_constants_do_not_give_20_to_1_but_epoch_is_close():
    a3 = sc.optimal("chinchilla-3", 5.76e23)
    ep = sc.optimal("epoch", 5.76e23)
    assert a3.tokens_per_param > 60
    assert 12 < ep.tokens_per_param < 30


def test_one_pf_day_is_eight_v100_days_at_peak_not_two_a100s_dense():
    assert sc.gpu_flops("V100", 8, 1, mfu=1.0) == pytest.approx(sc.FLOPS_PER_PF_DAY)
    assert sc.flops_to_pf_days(sc.gpu_flops("A100", 2, 1, mfu=1.0)) == pytest.approx(0.624)
    # default 40% MFU, and GPU-days inverts GPU-flops
    C = sc.gpu_flops("H100", 1000, 30)
    assert C == pytest.approx(1000 * 30 * 86400 * 989e12 * 0.4)
    assert sc.gpu_days(C, "H100") == pytest.approx(30000)
    assert sc.gpu_peak_flops("h100 sxm") == 989e12 == sc.gpu_peak_flops("H200")


def test_kaplan_optimum_formula_and_units():
    a = sc.optimal("kaplan", sc.FLOPS_PER_PF_DAY)            # 1 PF-day
    assert a.params == pytest.approx(1.3e9)
    assert 6 * a.params * a.tokens == pytest.approx(a.compute_flops)
    assert sc.loss_vs_params("kaplan", 8.8e13) == pytest.approx(1.0)
    assert sc.loss_vs_tokens("kaplan", 5.4e13) == pytest.approx(1.0)
    assert sc.loss_vs_compute("kaplan", 3.1e8 * sc.FLOPS_PER_PF_DAY) == pytest.approx(1.0)


# ---------------------------------------------------------------- allocation algebra

@pytest.mark.parametrize("law", sc.LAW_KEYS)
def test_allocation_spends_the_budget(law):
    for C in (1e18, 3.14e23, 1e26):
        a = sc.optimal(law, C)
        assert 6 * a.params * a.tokens == pytest.approx(C, rel=1e-9)
        assert a.pf_days == pytest.approx(C / 8.64e19)


@pytest.mark.parametrize("law", ["chinchilla-3", "epoch"])
def test_closed_form_optimum_is_the_iso_flop_minimum(law):
    curve = sc.iso_flop_curve(law, 1e22, params=np.logspace(8, 12, 4001))
    assert rel(curve["min_params"], curve["opt_params"]) < 0.01
    assert curve["opt_loss"] <= curve["loss"].min() + 1e-9


def test_frontier_grows_with_compute_and_loss_falls():
    f = sc.frontier("epoch", np.logspace(18, 26, 9))
    assert np.all(np.diff(f["params"]) > 0) and np.all(np.diff(f["tokens"]) > 0)
    assert np.all(np.diff(f["loss"]) < 0)
    g = sc.frontier_exponents("chinchilla-3")
    assert g["a"] + g["b"] == pytest.approx(1.0)
    assert g["a"] == pytest.approx(0.28 / 0.62)


def test_verdicts_for_real_models():
    assert sc.verdict("chinchilla-1", 175e9, 300e9).label == "under-trained"        # GPT-3
    assert sc.verdict("chinchilla-1", 7e9, 2e12).label == "over-trained"            # Llama 2 7B
    # thresholds: a factor of 2 either side of 20 tokens/param
    assert sc.verdict("chinchilla-1", 1e9, 41e9).label == "over-trained"
    assert sc.verdict("chinchilla-1", 1e9, 39e9).label == "about compute-optimal"
    assert sc.verdict("chinchilla-1", 1e9, 9e9).label == "under-trained"


def test_units_note_only_when_units_differ():
    assert sc.units_note(["chinchilla-3", "epoch"]) == ""
    note = sc.units_note(["kaplan", "chinchilla-3"])
    assert "non-embedding" in note and "WebText2" in note and "MassiveText" in note


def test_arithmetic_substitutes_the_numbers():
    text = sc.arithmetic_optimal("chinchilla-3", 5.76e23)
    a = sc.optimal("chinchilla-3", 5.76e23)
    assert "0.34 x 406.4" in text and "9.6e22" in text
    assert f"{a.loss:.4f}" in text
    assert "3.15e23" in sc.arithmetic_compute(175e9, 300e9, gpu="A100")
    assert "GPU-days" in sc.arithmetic_compute(175e9, 300e9, gpu="A100")
    assert "[" in sc.arithmetic_loss("kaplan", 1e9, 1e10)


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        sc.optimal("chinchilla-3", -1)
    with pytest.raises(InputError):
        sc.loss("epoch", 0, 1e9)
    with pytest.raises(InputError):
        sc.get_law("gpt-5")
    with pytest.raises(InputError):
        sc.gpu_flops("TPU", 1, 1)
    with pytest.raises(InputError):
        sc.gpu_flops("A100", 1, 1, mfu=1.5)


# ---------------------------------------------------------------- reading runs

CSV_WITH_BAD_ROWS = """parameters,tokens,loss
1e8,2e9,3.1
2e8,,3.0
0,1e9,3.2
3e8,4e9,-1
abc,1e9,3.0
4e8,8e9,nan
5e8,1e10,2.8
"""


def test_bad_rows_are_listed_with_reasons_and_skipped():
    runs = sc.parse_runs(CSV_WITH_BAD_ROWS)
    assert len(runs) == 2
    assert list(runs.lines) == [2, 8]
    reasons = {b.line: b.reason for b in runs.bad_rows}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "missing" in reasons[3]
    assert "zero" in reasons[4]
    assert "negative" in reasons[5]
    assert "not a number" in reasons[6]
    assert "finite" in reasons[7]
    assert runs.compute_flops == pytest.approx(6 * runs.params * runs.tokens)


def test_zoo_format_with_comments(tmp_path):
    p = tmp_path / "scaling_runs.csv"
    p.write_text("# lab sweep\n# more comments\nparams,non_embedding_params,tokens,flops,val_loss\n"
                 "1000000,500000,2e7,1.3e14,5.1\n2000000,1200000,4e7,4.9e14,4.6\n")
    runs = sc.read_runs(p)
    assert runs.columns == {"params": "params", "tokens": "tokens", "loss": "val_loss", "compute": "flops"}
    assert list(runs.params) == [1e6, 2e6] and list(runs.lines) == [4, 5]
    assert list(runs.compute_flops) == [1.3e14, 4.9e14]          # the file's compute, not 6ND
    ne = sc.read_runs(p, param_column="non_embedding_params")
    assert list(ne.params) == [5e5, 1.2e6]


def test_unreadable_files_and_missing_columns(tmp_path):
    with pytest.raises(InputError):
        sc.read_runs(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="loss"):
        sc.parse_runs("params,tokens\n1,2\n")
    with pytest.raises(InputError):
        sc.parse_runs("# only a comment\n")
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(InputError):
        sc.read_runs(bad)


# ---------------------------------------------------------------- the fit

@pytest.fixture(scope="module")
def synthetic_fit():
    runs = sc.synthetic_runs("chinchilla-3", n=150, noise=0.01, seed=3)
    return sc.fit_runs(runs, bootstrap=40, starts=16, seed=1, level=0.99)


def test_fit_recovers_known_constants_within_intervals(synthetic_fit):
    truth = sc.get_law("chinchilla-3").constants
    fit = synthetic_fit
    for k in sc.FIT_NAMES:
        lo, hi = fit.intervals[k]
        assert lo <= truth[k] <= hi, (k, truth[k], lo, hi)
        assert lo < fit.constants[k] < hi or lo == fit.constants[k] or hi == fit.constants[k]
        assert hi > lo
    assert fit.constants["E"] == pytest.approx(1.69, abs=0.1)
    assert fit.constants["alpha"] == pytest.approx(0.34, abs=0.05)
    assert fit.constants["beta"] == pytest.approx(0.28, abs=0.05)


def test_fit_residuals_match_the_noise(synthetic_fit):
    r = synthetic_fit.residuals
    assert r.shape == (150,)
    assert 0.005 < np.sqrt(np.mean(r ** 2)) < 0.02
    assert synthetic_fit.holdout["done"]
    assert synthetic_fit.holdout["mean_abs_rel_error"] < 0.03
    assert synthetic_fit.grid_size == 4500


def test_extrapolation_warning(synthetic_fit):
    assert synthetic_fit.extrapolation_warning(1e9, 1e10) == ""
    w = synthetic_fit.extrapolation_warning(70e9, 1.4e12)
    assert w.startswith("Extrapolation") and "params" in w and "tokens" in w


def test_fit_skips_bad_rows_and_reports_them():
    runs = sc.synthetic_runs("epoch", n=40, noise=0.005, seed=5)
    lines = ["params,tokens,loss"] + [f"{n},{d},{l}" for n, d, l in zip(runs.params, runs.tokens, runs.loss)]
    lines += ["1e9,,2.5", "oops,1e9,2.0", "1e9,1e10,0"]
    parsed = sc.parse_runs("\n".join(lines))
    fit = sc.fit_runs(parsed, bootstrap=5, starts=8)
    assert fit.n_runs == 40 and len(fit.to_json()["bad_rows"]) == 3
    assert fit.constants["E"] == pytest.approx(1.8172, abs=0.15)


def test_fit_needs_enough_runs():
    runs = sc.synthetic_runs(n=4)
    with pytest.raises(InputError, match="at least"):
        sc.fit_runs(runs)


def test_fit_reports_progress_and_can_be_cancelled():
    seen = []
    job = Job(on_progress=lambda f, s: seen.append((f, s)))
    sc.fit_runs(sc.synthetic_runs(n=30, seed=2), bootstrap=3, starts=4, job=job)
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0
    assert any("bootstrap" in s for _, s in seen)

    job = Job()
    def cancel_at_bootstrap(f, s):
        if "bootstrap" in s:
            job.cancel()
    job._on_progress = cancel_at_bootstrap
    with pytest.raises(Cancelled):
        sc.fit_runs(sc.synthetic_runs(n=30, seed=2), bootstrap=50, starts=4, job=job)


# ---------------------------------------------------------------- known models

def test_known_models_have_sources_and_honest_kinds():
    models = {m.name: m for m in sc.load_known_models()}
    for needed in ("GPT-3 175B", "Gopher 280B", "Chinchilla 70B", "LLaMA 7B", "LLaMA 65B", "Llama 2 7B",
                   "Llama 2 70B", "Llama 3 8B", "Llama 3 70B", "BloombergGPT 50B", "PaLM 540B", "BLOOM 176B",
                   "OPT-175B", "Falcon 7B", "Falcon 40B", "Falcon 180B", "GPT-2 1.5B", "BERT-large"):
        assert needed in models
    assert len([m for m in models.values() if m.family == "Pythia"]) >= 2
    for m in models.values():
        assert m.params > 0 and m.params_source
        assert m.tokens_source and m.compute_source
        for kind in (m.params_kind, m.tokens_kind, m.compute_kind):
            assert kind in ("reported", "derived", "estimated", "unknown")
        if m.compute_kind == "estimated":
            assert m.compute_flops == pytest.approx(6 * m.params * m.tokens, rel=2e-3)
        if m.tokens_kind == "unknown":
            assert math.isnan(m.tokens) and math.isnan(m.compute_flops)
    assert models["GPT-3 175B"].compute_kind == "reported"
    assert models["GPT-3 175B"].compute_flops == 3.14e23
    assert models["Chinchilla 70B"].tokens_per_param == pytest.approx(20)


def test_fit_warns_when_the_runs_do_not_pin_down_the_constants(synthetic_fit):
    assert synthetic_fit.warnings == []                 # a wide, clean synthetic sweep
    # two sizes, two budgets, no floor in the data: E cannot be identified
    N = np.repeat([1e6, 2e6], 4)
    D = np.tile([1e6, 2e6, 4e6, 8e6], 2)
    L = 30 / N ** 0.2 + 40 / D ** 0.15
    runs = sc.Runs(params=N, tokens=D, loss=L, compute_flops=6 * N * D, lines=np.arange(len(N)))
    fit = sc.fit_runs(runs, bootstrap=5, starts=8)
    assert any("distinct" in w for w in fit.warnings)


def test_the_zoo_sweep_reads_cleanly():
    path = sc.zoo_sweep_path()
    if not path.is_file():
        pytest.skip("models/scaling_runs.csv not produced yet")
    runs = sc.read_runs(path)
    assert len(runs) >= 6 and runs.bad_rows == []
    assert runs.columns["loss"] == "val_loss" and runs.columns["params"] == "params"
    assert np.all(runs.params > 0) and np.all(runs.loss > 0)


def test_fit_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    from threadpoolctl import threadpool_info

    from lab.core.scaling import fit as fit_module

    seen = []
    real = fit_module._fit_runs

    def spy(*args):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(*args)

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    monkeypatch.setattr(fit_module, "_fit_runs", spy)
    sc.fit_runs(sc.synthetic_runs("epoch", n=12, noise=0.005, seed=1), bootstrap=2, starts=2)
    assert seen and set(seen) == {1}
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
