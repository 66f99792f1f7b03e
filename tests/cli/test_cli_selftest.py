"""`tvlab selftest` end to end: a PNG per panel; bad input is one line and a non-zero exit."""
import json

from PySide6.QtGui import QImage


def test_selftest_writes_a_png_per_panel(tvlab, tiny_gpt2, tmp_path):
    from lab.ui.panels.base import panel_classes

    out = tmp_path / "shots"
    proc = tvlab("selftest", "--out", out, "--model", tiny_gpt2, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    for cls in panel_classes():
        img = QImage(str(out / f"{cls.panel_id}.png"))
        assert not img.isNull() and img.width() > 50 and img.height() > 30, cls.panel_id
    formats = QImage(str(out / "precision.number-formats.png"))      # the precision panel's Number formats tab
    assert not formats.isNull() and formats.width() > 400 and str(out / "precision.number-formats.png") in report["files"]
    window = QImage(str(out / "window.png"))
    assert window.width() >= 1000


def test_selftest_with_a_broken_model_fails_cleanly(tvlab, tmp_path, one_line_error):
    line = one_line_error(tvlab("selftest", "--out", tmp_path / "s", "--model", tmp_path / "missing"))
    assert "does not exist" in line


def test_selftest_unwritable_output(tvlab, tmp_path, one_line_error):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_line_error(tvlab("selftest", "--out", blocker / "sub"))
    assert "Cannot write" in line
