"""The precision panel's Number formats tab, offscreen: typed numbers, the table, a weight
tensor's histogram and errors, the prompt at each precision (the worker does the torch)."""
import pytest
from PySide6.QtCore import Qt

from lab.ui.panels.precision import PrecisionPanel
from lab.ui.widgets.number_formats import NumberFormatsView

WAIT = 120_000


def row_texts(view, fmt):
    strip, stored, abs_err, rel_err, flag = view.cells[fmt]
    return stored.text(), abs_err.text(), rel_err.text(), flag.text()


def test_number_view_shows_stored_values_bits_and_flags(qtbot):
    view = NumberFormatsView()
    qtbot.addWidget(view)
    assert view.entry.text() == "π"
    assert row_texts(view, "fp32")[0] == "3.141592741"
    assert row_texts(view, "fp16")[0] == "3.140625" and row_texts(view, "bf16")[0] == "3.140625"
    assert row_texts(view, "int8")[0] == "3"
    strip = view.cells["fp32"][0]
    assert strip.fields == [("sign", "0"), ("exponent", "10000000"), ("mantissa", "10010010000111111011011")]
    assert view.cells["int8"][0].fields == [("sign", "0"), ("value", "0000011")]
    view.set_value("70,000")
    stored, abs_err, _, flag = row_texts(view, "fp16")
    assert stored == "inf" and abs_err == "–" and "overflow → inf" in flag
    assert row_texts(view, "bf16")[:2] == ("70144", "144")
    assert "clamped to 127" in row_texts(view, "int8")[3]
    view.set_value("1e-8")
    assert row_texts(view, "fp16")[0] == "0" and "underflow → 0" in row_texts(view, "fp16")[3]
    view.set_value("1e-6")
    assert "subnormal" in row_texts(view, "fp16")[3]
    view.range_edit.setText("0.5")
    view.set_value("0.25")
    assert view.stored["int8_scaled"].scale == pytest.approx(0.5 / 127)
    # presets are buttons that type their number
    from PySide6.QtWidgets import QPushButton

    preset = view.findChild(QPushButton, "formats-preset-65,504")
    qtbot.mouseClick(preset, Qt.LeftButton)
    assert view.entry.text() == "65,504" and row_texts(view, "fp16")[0] == "65504"
    # bad input: one message, the rows keep the last good number
    view.set_value("twelve")
    assert "not a number" in view.note.text()
    assert row_texts(view, "fp16")[0] == "65504"


@pytest.fixture
def panel(make_panel):
    p = make_panel(PrecisionPanel, (1400, 900))
    p.tabs.setCurrentWidget(p.formats)
    return p


def test_formats_tab_table_weights_and_comparison(qtbot, session, panel, tiny_gpt2, load_and_wait):
    qtbot.waitUntil(lambda: panel.formats.number.has_table, timeout=WAIT)       # from the worker
    table = panel.formats.number.table
    assert [table.item(i, 0).text() for i in range(table.rowCount())] == ["fp32", "fp16", "bf16", "int8", "int4"]
    assert table.item(0, 3).text() == "±3.4028235e+38" and "3×10^38" in table.item(0, 7).text()
    assert table.item(1, 3).text() == "±65504"
    assert not panel.selftest_ready()
    load_and_wait(qtbot, session, tiny_gpt2)
    weights = panel.formats.weights
    qtbot.waitUntil(lambda: weights.stats is not None, timeout=WAIT)
    assert weights.picker.count() > 3 and weights.stats.name == weights.picker.currentData()
    assert [weights.errors.item(i, 0).text() for i in range(4)] == ["fp16", "bf16", "int8", "int4"]
    assert "int8 scale" in weights.info.text()
    # another tensor, picked by the user
    other = weights.picker.itemData(weights.picker.count() - 1)
    weights.tensor_chosen.emit(other)
    qtbot.waitUntil(lambda: weights.stats.name == other, timeout=WAIT)
    weights.grid_choice.setCurrentText("int8 grid")          # redraws with 255 levels, no error
    qtbot.waitUntil(lambda: panel.selftest_ready(), timeout=WAIT)

    session.set_prompt("The cat sat on the", immediate=True)
    qtbot.waitUntil(lambda: session.trace is not None, timeout=WAIT)
    cmp_view = panel.formats.compare
    assert panel.compare_precisions()
    qtbot.waitUntil(lambda: cmp_view.result is not None, timeout=WAIT)
    t = cmp_view.table
    assert [t.item(i, 0).text() for i in range(t.rowCount())] == ["torch fp32", "torch fp16", "torch bf16"]
    assert t.item(0, 6).text() == "yes" and t.item(0, 8).text() == "0.00e+00"
    assert "No int8 ONNX file yet" in cmp_view.status.text()
    # a new prompt compares again while the tab is shown
    session.set_prompt("To be, or not to be", immediate=True)
    qtbot.waitUntil(lambda: cmp_view.result is not None and cmp_view.result.text == "To be, or not to be",
                    timeout=WAIT)


def test_comparison_includes_the_converters_int8_file(qtbot, session, panel, tiny_gpt2, load_and_wait, tmp_path):
    from lab.core import models, precision

    out = tmp_path / "onnx"
    lm = models.load(str(tiny_gpt2))
    precision.convert(lm, out, ("fp32", "int8"), latency_runs=1)
    load_and_wait(qtbot, session, tiny_gpt2)
    panel.folder.setText(str(out))
    assert panel.int8_file() == str(out / "model-int8.onnx")
    session.set_prompt("Dog bites man.", immediate=True)
    qtbot.waitUntil(lambda: session.trace is not None, timeout=WAIT)
    panel.compare_precisions()
    cmp_view = panel.formats.compare
    qtbot.waitUntil(lambda: cmp_view.result is not None, timeout=WAIT)
    labels = [r.label for r in cmp_view.result.rows]
    assert labels == ["torch fp32", "torch fp16", "torch bf16", "int8 (ONNX)"]
    assert cmp_view.table.item(3, 0).text() == "int8 (ONNX)" and "model-int8.onnx" in cmp_view.status.text()
    panel.folder.setText(str(tmp_path / "elsewhere"))
    assert panel.int8_file() is None


def test_lesson_settings_and_export_views(qtbot, session, panel, tmp_path):
    panel.tabs.setCurrentIndex(0)
    panel.apply_lesson({"view": "formats", "value": "70000"})
    assert panel.tabs.currentWidget() is panel.formats
    assert panel.formats.number.entry.text() == "70000"
    panel.tabs.setCurrentIndex(0)
    files = panel.export_views(tmp_path)
    assert [f.name for f in files] == ["precision.png", "precision-formats.png"]
    assert all(f.stat().st_size > 1000 for f in files)
    assert panel.tabs.currentIndex() == 0           # the tab on show is put back
    panel.compare_precisions()                        # no model: said, not run
    assert "Load a model" in panel.formats.compare.status.text()
