"""The scaling-laws panel, driven like a user would, offscreen."""
import math

import numpy as np
import pytest

from lab.core import scaling as sc
from lab.ui.panels.scaling import ScalingPanel


@pytest.fixture
def panel(make_panel):
    return make_panel(ScalingPanel, (1200, 800))


def choose_law(panel, key):
    panel.law.setCurrentIndex(sc.LAW_KEYS.index(key))


def test_law_shows_constants_source_and_units(panel):
    choose_law(panel, "kaplan")
    text = panel.law_info.text()
    assert "8.8e13" in text and "2001.08361" in text and "non-embedding" in text
    choose_law(panel, "epoch")
    assert "482" in panel.law_info.text() and "2404.10102" in panel.law_info.text()
    assert panel.units_label.isHidden()
    panel.overlay.setChecked(True)                      # Kaplan + Chinchilla on one axis
    assert panel.units_label.isVisible()
    assert "WebText2" in panel.units_label.text() and "MassiveText" in panel.units_label.text()
    panel.overlay.setChecked(False)
    assert panel.units_label.isHidden()


def test_compute_budget_gives_the_optimum_and_moves_the_iso_flop_curve(panel):
    choose_law(panel, "chinchilla-1")
    panel.compute.set_value(5.76e23)
    assert "20.0 tokens/param" in panel.optimum.text()
    a = sc.optimal("chinchilla-1", 5.76e23)
    panel.tabs.setCurrentIndex(1)                       # markers of a hidden tab catch up when shown
    x, y = panel.plots.iso_current_opt.getOriginalDataset()
    assert x[0] == pytest.approx(a.params) and y[0] == pytest.approx(a.loss)
    assert panel.pf_days.value() == pytest.approx(5.76e23 / 8.64e19)
    panel.tabs.setCurrentIndex(0)
    assert panel.plots.c_line.value() == pytest.approx(math.log10(5.76e23))
    # chinchilla-3 puts the optimum elsewhere at the same budget
    choose_law(panel, "chinchilla-3")
    panel.tabs.setCurrentIndex(1)
    x3, _ = panel.plots.iso_current_opt.getOriginalDataset()
    assert x3[0] < 0.7 * a.params


def test_pf_days_and_gpu_budgets_are_linked(panel):
    panel.budget_mode.setCurrentIndex(1)
    panel.pf_days.set_value(3640)
    assert panel.compute.value() == pytest.approx(3640 * 8.64e19)
    panel.budget_mode.setCurrentIndex(2)
    panel.gpu.setCurrentText("V100")
    panel.mfu.setValue(1.0)
    panel.gpu_days.setValue(1)
    panel.gpu_count.setValue(8)                          # 8 V100s for a day at peak = 1 PF-day
    assert panel.compute.value() == pytest.approx(8.64e19)
    assert "1 PF-days" in panel.optimum.text() or "1e0" in panel.optimum.text() or "= 1 PF" in panel.optimum.text()


def test_params_tokens_verdict_presets_and_typed_values(panel, qtbot):
    choose_law(panel, "chinchilla-1")
    panel.preset.setCurrentText("GPT-3 175B")
    assert "under-trained" in panel.point_info.text() and "3.15e23" in panel.point_info.text()
    panel.preset.setCurrentText("Llama 3 8B")
    assert "over-trained" in panel.point_info.text()
    panel.params.edit.setText("70B")
    panel.params.edit.editingFinished.emit()
    panel.tokens.edit.setText("1.4T")
    panel.tokens.edit.editingFinished.emit()
    assert panel.params.value() == 70e9 and panel.tokens.value() == 1.4e12
    assert "about compute-optimal" in panel.point_info.text()
    panel.tokens.edit.setText("lots")
    panel.tokens.edit.editingFinished.emit()
    assert panel.tokens.value() == 1.4e12 and "d03030" in panel.tokens.edit.styleSheet()
    panel.tabs.setCurrentIndex(2)
    assert panel.plots.fn_point.x == pytest.approx(6 * 70e9 * 1.4e12) and panel.plots.fn_point.y == pytest.approx(70e9)
    assert panel.plots.fn_point.item.isVisible()


def test_show_the_arithmetic(panel):
    assert panel.point_math.text.isHidden()
    panel.point_math.button.click()
    assert panel.point_math.text.isVisible()
    assert "C = 6 N D" in panel.point_math.text.text()
    panel.optimum_math.button.click()
    assert "tokens/param" in panel.optimum_math.text.text()
    before = panel.optimum_math.text.text()
    panel.compute.set_value(1e21)
    assert panel.optimum_math.text.text() != before      # follows the slider


def test_known_models_are_on_the_frontier(panel):
    assert panel.plots.known_plotted >= 18
    names = {item.textItem.toPlainText() for item in panel.plots.plot_fn.getPlotItem().items
             if hasattr(item, "textItem")}
    assert {"GPT-3 175B", "Chinchilla 70B", "Llama 2 70B"} <= names


def test_csv_import_fits_in_the_background_and_lists_bad_rows(panel, qtbot, tmp_path):
    runs = sc.synthetic_runs("epoch", n=60, noise=0.005, seed=11)
    lines = ["# my runs", "params,tokens,loss"]
    lines += [f"{n:.6g},{d:.6g},{l:.6g}" for n, d, l in zip(runs.params, runs.tokens, runs.loss)]
    lines += ["1e9,,2.0", "-5,1e9,2", "big,1e9,2"]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    panel.load_csv(path, bootstrap=20)
    assert panel.bad_rows.count() == 3 and "missing" in panel.bad_rows.item(0).text()
    qtbot.waitUntil(lambda: panel.fit is not None, timeout=120000)
    assert not panel.fit_running and panel.fit_progress.isHidden()
    assert "bootstrap intervals" in panel.fit_info.text() and "alpha" in panel.fit_info.text()
    assert panel.fit.n_runs == 60
    assert len(panel.plots.plot_resid.getPlotItem().listDataItems()) == 1
    # a point far outside the runs warns about extrapolation
    panel.params.set_value(1e12)
    assert "Extrapolation" in panel.extrapolation.text() and panel.extrapolation.isVisible()
    panel.params.set_value(float(np.median(runs.params)))
    panel.tokens.set_value(float(np.median(runs.tokens)))
    assert "Extrapolation" not in panel.extrapolation.text()


def test_fit_can_be_cancelled_and_bad_files_do_not_crash(panel, qtbot, tmp_path):
    panel.start_fit(sc.synthetic_runs(n=80, seed=4), bootstrap=5000)
    qtbot.waitUntil(lambda: panel.fit_progress.value() > 20, timeout=60000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.fit_running, timeout=60000)
    assert panel.fit is None and "Cancelled" in panel.fit_info.text()
    panel.load_csv(tmp_path / "missing.csv")
    assert "No such file" in panel.fit_info.text()
    few = tmp_path / "few.csv"
    few.write_text("params,tokens,loss\n1e8,1e9,3\n")
    panel.load_csv(few)
    assert "at least" in panel.fit_info.text() and not panel.fit_running


def test_the_zoo_sweep_is_fitted_when_its_tab_is_shown(panel, qtbot):
    if panel.sweep_path is None:
        pytest.skip("models/scaling_runs.csv not produced yet")
    assert panel.runs is not None and len(panel.runs) >= 6 and panel.fit is None
    panel.tabs.setCurrentIndex(panel.RUNS_TAB)
    assert panel.fit_running
    qtbot.waitUntil(lambda: panel.fit is not None, timeout=180000)
    assert panel.fit.runs.source == str(panel.sweep_path)
    assert "fitted to" in panel.fit_info.text()


def test_a_fit_error_is_the_panels_message_and_the_next_fit_works(panel, qtbot, session):
    """Fits run on the session's compute lane: its errors reach the panel like any job's."""
    errors = []
    session.error.connect(errors.append)
    panel.start_fit(sc.synthetic_runs(n=4, seed=1), bootstrap=5)      # too few runs: core refuses
    qtbot.waitUntil(lambda: not panel.fit_running, timeout=60000)
    assert panel.fit is None and "Need at least" in panel.fit_info.text()
    assert "d03030" in panel.fit_info.text() and panel.fit_progress.isHidden()
    assert not panel.cancel_button.isEnabled() and errors == []       # the panel's message, not a dialog
    panel.start_fit(sc.synthetic_runs("epoch", n=40, noise=0.005, seed=2), bootstrap=5)
    qtbot.waitUntil(lambda: panel.fit is not None, timeout=120000)
    assert panel.fit.n_runs == 40 and "fitted to 40 runs" in panel.fit_info.text()


def test_a_newer_fit_replaces_a_running_one(panel, qtbot):
    panel.start_fit(sc.synthetic_runs(n=80, seed=4), bootstrap=5000)
    qtbot.waitUntil(lambda: panel.fit_progress.value() > 5, timeout=60000)
    newer = sc.synthetic_runs("epoch", n=30, noise=0.005, seed=5)
    panel.start_fit(newer, bootstrap=5)
    qtbot.waitUntil(lambda: panel.fit is not None, timeout=120000)
    qtbot.wait(200)                                   # the older one's "Cancelled." must not land
    assert panel.fit.n_runs == 30 and panel.runs is newer
    assert "fitted to 30 runs" in panel.fit_info.text() and not panel.fit_running


def test_esc_stops_a_running_fit(panel, qtbot, session):
    """Esc and Run ▸ Cancel call session.cancel(): the fit is a session job, so it stops."""
    busy = []
    session.busy_changed.connect(lambda b, label: busy.append((b, label)))
    panel.start_fit(sc.synthetic_runs(n=80, seed=4), bootstrap=5000)
    qtbot.waitUntil(lambda: panel.fit_progress.value() > 10, timeout=60000)
    assert (True, "fitting the scaling law") in busy       # the status bar shows it
    session.cancel()
    qtbot.waitUntil(lambda: not panel.fit_running, timeout=60000)
    assert panel.fit is None and "Cancelled" in panel.fit_info.text()
    assert busy[-1] == (False, "") and not session.busy
