"""`tvlab doctor` on a machine without a display: one line per check, each failure with its fix."""
import os
import subprocess
import sys


def test_doctor_without_a_display_prints_every_check_and_the_fixes(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(TVLAB_SETTINGS_DIR=str(tmp_path / "settings"), TVLAB_LOG_DIR=str(blocker / "logs"))
    proc = subprocess.run([sys.executable, "-m", "lab", "doctor"], capture_output=True, text=True,
                          timeout=240, env=env)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    by_name = {line[6:22].strip(): line for line in lines[:-1]}
    assert list(by_name) == ["Qt platform", "torch", "GPU", "zoo", "settings folder", "log folder", "disk space"]
    if sys.platform.startswith("linux"):
        assert by_name["Qt platform"].startswith("FAIL") and "no display" in by_name["Qt platform"]
        assert "QT_QPA_PLATFORM=offscreen" in by_name["Qt platform"]
    assert by_name["torch"].startswith("ok ")
    assert by_name["GPU"].startswith(("ok ", "info", "FAIL"))
    assert by_name["zoo"].startswith("ok ") and "bard-gpt" in by_name["zoo"]
    assert by_name["settings folder"].startswith("ok ") and str(tmp_path / "settings") in by_name["settings folder"]
    assert by_name["log folder"].startswith("FAIL") and "set TVLAB_LOG_DIR to a writable folder" in by_name["log folder"]
    assert by_name["disk space"].startswith(("ok ", "FAIL")) and "free at" in by_name["disk space"]
    failed = sum(line.startswith("FAIL") for line in lines)
    assert lines[-1] == f"{failed} checks failed" and proc.returncode == 1


def test_doctor_qt_check_passes_with_the_offscreen_plugin(monkeypatch):
    from lab.cli import doctor

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check = doctor.check_qt()
    assert check.status == "ok" and "offscreen" in check.seen
