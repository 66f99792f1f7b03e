"""The precision converter panel, driven like a user would, offscreen."""
import json
import os

import pytest

from lab.core import memory as mem
from lab.core.units import number_or_none as parse_count
from lab.ui.panels.precision import PrecisionPanel

WAIT = 240_000   # ms: an export of a tiny model takes seconds, more on a busy machine


@pytest.fixture
def panel(make_panel):
    return make_panel(PrecisionPanel, (1400, 420))


def load(qtbot, session, folder):
    session.load_model(str(folder))
    qtbot.waitUntil(lambda: session.card is not None, timeout=60_000)


def test_convert_shows_table_and_chart_then_refuses_a_full_folder(qtbot, session, panel, tiny_gpt2, tmp_path,
                                                                  monkeypatch):
    from PySide6.QtGui import QDesktopServices

    assert not panel.convert_button.isEnabled()          # no model yet
    assert panel.open_button.isHidden()                  # nothing converted yet
    load(qtbot, session, tiny_gpt2)
    assert panel.folder.text().endswith("tvlab-onnx/" + session.card.name)
    out = tmp_path / "onnx"
    panel.folder.setText(str(out))
    panel.checks["int4"].setChecked(False)
    assert panel.selected_precisions() == ["fp32", "fp16", "int8"]
    stages = []
    session.progress.connect(lambda f, s: stages.append(s.split(":")[0]))
    assert panel.start_conversion()
    assert panel.cancel_button.isEnabled() and not panel.convert_button.isEnabled()
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT)
    assert {"export", "convert", "quantize", "verify"} <= set(stages)
    assert sorted(os.listdir(out)) == ["model-fp16.onnx", "model-fp32.onnx", "model-int8.onnx", "report.json"]
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    assert not panel.open_button.isHidden()               # "Open folder" shows the result's folder
    panel.open_button.click()
    assert opened == [str(out)]
    # one table row per precision, with the numbers of report.json
    saved = json.loads((out / "report.json").read_text())
    assert panel.table.rowCount() == 3
    assert [panel.table.item(i, 0).text() for i in range(3)] == ["fp32", "fp16", "int8"]
    assert panel.table.item(0, 8).text() == "100.0%"                      # fp32 top-1 agreement
    assert panel.table.item(0, 11).text() == "0 / 0"
    assert "CPU provider" in panel.summary.text() and "thread" in panel.summary.text()
    # the bar chart shows file sizes in MB, fp32 the largest
    panel.chart.metric_box.setCurrentIndex(0)
    sizes = panel.chart.values()
    assert sizes == pytest.approx([r["file_bytes"] / 1e6 for r in saved["rows"]])
    assert sizes[0] == max(sizes)
    panel.chart.metric_box.setCurrentIndex(3)                                       # top-1 agreement in %
    assert panel.chart.values()[0] == pytest.approx(100.0)
    assert panel.cancel_button.isEnabled() is False and panel.convert_button.isEnabled()

    # converting again into the now-full folder asks first; "No" leaves it alone
    asked = []
    panel.confirm_replace = lambda text: asked.append(text) or False
    assert not panel.start_conversion()
    assert asked and "already holds" in asked[0] and "--force" not in asked[0]
    assert sorted(os.listdir(out)) == ["model-fp16.onnx", "model-fp32.onnx", "model-int8.onnx", "report.json"]


def test_cancel_leaves_no_files_and_says_so(qtbot, session, panel, tiny_gpt2, tmp_path):
    load(qtbot, session, tiny_gpt2)
    out = tmp_path / "onnx"
    panel.folder.setText(str(out))
    assert panel.start_conversion()
    qtbot.waitUntil(lambda: panel.progress_bar.value() > 0 or "export" in panel.stage.text(), timeout=30_000)
    panel.cancel_conversion()
    qtbot.waitUntil(lambda: not panel._running, timeout=WAIT)
    assert "Cancelled" in panel.stage.text() and "no partial files" in panel.stage.text()
    assert not out.exists()
    assert os.listdir(tmp_path) == []
    assert panel.convert_button.isEnabled()


def test_unwritable_folder_shows_one_message(qtbot, session, panel, tiny_gpt2, tmp_path):
    load(qtbot, session, tiny_gpt2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    panel.folder.setText(str(blocker / "onnx"))
    assert not panel.start_conversion()
    assert panel.message.isVisible() and "is a file" in panel.message.text()


def test_memory_calculator_for_the_loaded_model_and_the_course_example(qtbot, session, panel, tiny_gpt2):
    panel.tabs.setCurrentIndex(1)
    calc = panel.calculator
    qtbot.waitUntil(lambda: calc.device.count() > len([1]), timeout=30_000)
    # no GPU here: said plainly, presets and the system RAM offered
    texts = [calc.device.itemText(i) for i in range(calc.device.count())]
    assert any("CPU (system RAM)" in t for t in texts)
    assert "No GPU detected" in calc.device_note.text() or "Detected" in calc.device_note.text()

    calc.show_course_example()
    est = calc.estimate
    assert est["weights_bytes"]["fp32"] == pytest.approx(4e9)
    assert est["course_example"]["rule_of_thumb_bytes"] == pytest.approx(24e9)
    html = calc.calc_view.toPlainText()
    assert "4 GB" in html and "24 GB" in html and "16 bytes/param" in html

    # a typed count with a shape gives activations; 80 GB: 7B training does not fit, inference does
    calc.params_edit.setText("7B")
    calc.layers.setValue(32)
    calc.hidden.setValue(4096)
    calc.heads.setValue(32)
    calc.device.setCurrentIndex(next(i for i, t in enumerate(texts) if t.startswith("80 GB")))
    est = calc.estimate
    assert est["params"] == 7e9 and est["training"]["activations_bytes"] > 0
    assert est["fits"]["training"]["fits"] is False and est["fits"]["inference"]["fits"] is True
    text = calc.calc_view.toPlainText()
    assert "does not fit" in text and "Adam" in text

    load(qtbot, session, tiny_gpt2)
    qtbot.waitUntil(lambda: calc.estimate and calc.estimate["params"] == session.card.params, timeout=10_000)
    assert calc.estimate["weights_bytes"]["int4"] == pytest.approx(session.card.params * 0.5)
    assert calc.estimate["training"]["activations_bytes"] is not None   # shape from the card
    qtbot.waitUntil(panel.selftest_ready, timeout=60_000)   # the formats tab's weights come from the worker


def test_parse_count():
    assert parse_count("124M") == 124e6 and parse_count("1e9") == 1e9 and parse_count("7b") == 7e9
    assert parse_count("1,300,000") == 1.3e6
    assert parse_count("lots") is None and parse_count("-5") is None
    assert mem.weights_bytes(parse_count("1B"), "fp32") == 4e9


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_run_cancel_stops_a_conversion_and_leaves_the_previous_one(qtbot, session, panel, tiny_gpt2, tmp_path):
    """Esc / Run ▸ Cancel (session.cancel(), not the panel's button) stop a conversion that
    would replace an earlier good one: the folder stays byte for byte, no temp folder is left."""
    load(qtbot, session, tiny_gpt2)
    work = tmp_path / "work"
    out = work / "onnx"
    panel.folder.setText(str(out))
    for p, cb in panel.checks.items():
        cb.setChecked(p == "fp32")
    assert panel.start_conversion()
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT)
    before = _snapshot(out)
    assert sorted(before) == ["model-fp32.onnx", "report.json"]

    panel.checks["fp16"].setChecked(True)
    panel.confirm_replace = lambda text: True
    stages = []

    def first_progress(channel, fraction, stage):
        if channel == "precision.convert" and not stages:
            stages.append(stage)
            session.cancel()                      # what Esc and Run ▸ Cancel do
            stages.append(panel.stage.text())

    session.channel_progress.connect(first_progress)
    assert panel.start_conversion()
    qtbot.waitUntil(lambda: not panel._running, timeout=WAIT)
    assert stages and "Cancelling" in stages[1]    # the panel says so at once, not only at the end
    assert "Cancelled" in panel.stage.text() and "no partial files" in panel.stage.text()
    assert not panel.message.isVisible()
    assert _snapshot(out) == before
    assert os.listdir(work) == ["onnx"]            # no .onnx.tmp-* folder beside it
    assert panel.convert_button.isEnabled()
    # the worker carries on
    got = []
    session.request("test.after", lambda lm, job: lm.card.name, got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=30_000)
    assert got == [session.card.name]


def test_another_model_resets_the_readout_folder_and_warnings(qtbot, session, tiny_gpt2, tiny_llama,
                                                              tmp_path, monkeypatch):
    from lab.ui.panels.precision import INTRO

    monkeypatch.setenv("HOME", str(tmp_path / "home"))      # the derived folders go under here
    panel = PrecisionPanel(session)
    qtbot.addWidget(panel)
    panel.show()
    load(qtbot, session, tiny_gpt2)
    first = session.card.name
    derived = panel.folder.text()
    assert derived == str(tmp_path / "home" / "tvlab-onnx" / first)
    for p, cb in panel.checks.items():
        cb.setChecked(p == "fp32")
    assert panel.start_conversion()                          # into the derived folder
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT)
    assert panel.table.rowCount() == 1 and panel.chart.values()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    panel.folder.setText(str(blocker / "onnx"))
    assert not panel.start_conversion()                      # a warning about this model's folder
    assert panel.message.isVisible()
    panel.folder.setText(derived)

    load_next = []
    session.model_changed.connect(load_next.append)
    session.load_model(str(tiny_llama))
    qtbot.waitUntil(lambda: bool(load_next), timeout=60_000)
    second = session.card.name
    assert second != first
    assert panel.report is None and panel.conversion is None
    assert panel.table.rowCount() == 0 and panel.chart.values() == []
    assert panel.summary.text() == INTRO
    assert not panel.message.isVisible()
    assert first not in panel.stage.text() and "readout" not in panel.stage.text()
    assert panel.folder.text() == str(tmp_path / "home" / "tvlab-onnx" / second)
    assert panel.convert_button.isEnabled()

    # a folder the user chose stays the user's
    mine = str(tmp_path / "mine")
    panel.folder.setText(mine)
    session.load_model(str(tiny_gpt2))
    qtbot.waitUntil(lambda: session.card.name == first, timeout=60_000)
    assert panel.folder.text() == mine


def test_the_controller_forgets_its_conversion_with_the_model():
    from lab.ui.controllers.conversion import Conversion, ConversionController

    ctl = ConversionController()
    ctl.last = Conversion(report=None, out="/x", model="m")
    ctl.model_replaced()
    assert ctl.last is None


def _verdict_lines(calc):
    """(mode, text, colour) of each verdict line of the calculator's results."""
    import re
    html = calc.calc_view.toHtml()
    out = []
    for color, text in re.findall(r"color:(#[0-9a-fA-F]{6});[^>]*>.*?Does it fit on [^?]*\? (.*?)</span>", html):
        mode, _, verdict = text.partition(": ")
        out.append((mode, verdict, color.lower()))
    return out


def test_memory_verdict_is_never_fits_with_an_unknown_part(qtbot, panel):
    """The 1B course example on a 16 GB card: activations from a stated typical shape, and the
    training verdict says "does not fit" in red; with the shape unknown it says "unknown" in amber."""
    panel.tabs.setCurrentIndex(1)
    calc = panel.calculator
    calc.seq.setValue(512)            # as a loaded model's context leaves it: the example resets it
    calc.show_course_example()
    calc.device.setCurrentIndex(next(i for i in range(calc.device.count())
                                     if calc.device.itemText(i).startswith("16 GB")))
    shape = calc.estimate["activations"]["shape"]
    assert (calc.layers.value(), calc.hidden.value(), calc.heads.value()) == (24, 2048, 16)
    assert shape["source"] == "typical" and (calc.batch.value(), calc.seq.value()) == (1, 2048)
    assert "GPT-3 XL" in calc.shape_note.text() and "batch 1" in calc.shape_note.text()
    lines = dict((m, (v, c)) for m, v, c in _verdict_lines(calc))
    assert lines["Training"][0].startswith("does not fit") and lines["Training"][1] == mem_color("does not fit")
    assert lines["Inference"][0].startswith("fits") and lines["Inference"][1] == mem_color("fits")
    text = calc.calc_view.toPlainText()
    assert "Course: rule of thumb" in text and "Lab: breakdown" in text and "24 GB" in text and "27.5 GB" in text

    calc.layers.setValue(0)          # shape unknown: activations left out
    assert calc.estimate["training"]["activations_bytes"] is None
    lines = dict((m, (v, c)) for m, v, c in _verdict_lines(calc))
    assert lines["Training"][0].startswith("unknown") and lines["Training"][1] == mem_color("unknown")
    assert lines["Training"][1] != mem_color("fits") and "unknown" in calc.shape_note.text().lower()

    # a bigger card: everything known and far below it, green "fits"; a typed shape is kept as the user's
    calc.layers.setValue(24)
    calc.device.setCurrentIndex(next(i for i in range(calc.device.count())
                                     if calc.device.itemText(i).startswith("80 GB")))
    lines = dict((m, (v, c)) for m, v, c in _verdict_lines(calc))
    assert lines["Training"][0].startswith("fits") and lines["Training"][1] == mem_color("fits")
    assert calc.estimate["activations"]["shape"]["source"] == "given" and "your shape" in calc.shape_note.text()


def mem_color(status):
    from lab.ui import theme
    from lab.ui.widgets.memory_calculator import VERDICT_TONES
    return theme.tone(VERDICT_TONES[status]).lower()
