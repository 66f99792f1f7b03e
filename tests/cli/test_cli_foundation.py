"""`tvlab info` and `tvlab selftest` end to end; bad input is one line and a non-zero exit."""
import json

import pytest
from PySide6.QtGui import QImage


def one_line_error(proc):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_info_json_for_each_kind(tvlab, tiny_model_dir):
    for kind, expected in (("gpt2", "decoder-only"), ("bert", "encoder-only"), ("t5", "encoder-decoder")):
        proc = tvlab("info", "--model", tiny_model_dir(kind), "--json")
        assert proc.returncode == 0, proc.stderr
        card = json.loads(proc.stdout)
        assert card["kind"] == expected
        assert card["params"] > 0 and card["layers"] == 2 and card["heads"] == 4


def test_info_human_readable(tvlab, tiny_gpt2):
    proc = tvlab("info", "--model", tiny_gpt2)
    assert proc.returncode == 0 and "decoder-only" in proc.stdout and "params" in proc.stdout


@pytest.mark.parametrize("ref,message", [
    ("/nonexistent/folder", "does not exist"),
    ("zoo:no-such-model", "No bundled model"),
    ("someone/uncached-model", "local Hugging Face cache"),
])
def test_info_bad_references(tvlab, ref, message):
    assert message in one_line_error(tvlab("info", "--model", ref))


def test_info_folder_without_config(tvlab, tmp_path):
    assert "no config.json" in one_line_error(tvlab("info", "--model", tmp_path))


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
    window = QImage(str(out / "window.png"))
    assert window.width() >= 1000


def test_selftest_with_a_broken_model_fails_cleanly(tvlab, tmp_path):
    line = one_line_error(tvlab("selftest", "--out", tmp_path / "s", "--model", tmp_path / "missing"))
    assert "does not exist" in line


def test_selftest_unwritable_output(tvlab, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_line_error(tvlab("selftest", "--out", blocker / "sub"))
    assert "Cannot write" in line


def test_help_lists_the_commands(tvlab):
    proc = tvlab("--help")
    assert proc.returncode == 0
    for cmd in ("gui", "info", "selftest", "bench"):
        assert cmd in proc.stdout
