"""tvlab names the packages to install when Qt's xcb plugin lacks its system libraries."""
import pytest

from lab.cli import main
from lab.ui import qt_libraries


def test_missing_libraries_are_named_as_packages(monkeypatch):
    present = {"xcb-cursor"}
    missing = qt_libraries.missing_libraries(lambda lib: f"lib{lib}.so" if lib in present else None)
    assert "xcb-icccm" in missing and "xcb-keysyms" in missing and "xcb-cursor" not in missing
    line = qt_libraries.install_line(["xcb-icccm", "xcb-keysyms", "xcb-randr", "xcb-xkb"])
    assert "\n" not in line
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1 libxcb-randr0 libxcb-xkb1;" in line
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms libxcb." in line      # libxcb once


@pytest.mark.parametrize("env, platform, wanted", [
    ({"DISPLAY": ":0"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({}, "linux", False),                                        # no display: Qt says so itself
    ({"DISPLAY": ":0"}, "darwin", False),
])
def test_only_linux_with_xcb_is_checked(env, platform, wanted):
    assert qt_libraries.wants_xcb(env, platform) is wanted


def test_gui_prints_one_line_and_stops_before_qt(monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(qt_libraries.sys, "platform", "linux")
    monkeypatch.setattr(qt_libraries, "missing_libraries", lambda: ["xcb-icccm", "xcb-keysyms"])
    monkeypatch.setattr(qt_libraries, "_qt_starts", lambda: False)
    started = []
    monkeypatch.setattr("lab.ui.app.run", lambda *a: started.append(a) or 0)
    assert main(["gui"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "libxcb-icccm4 libxcb-keysyms1" in err and "xcb-util-wm" in err
    assert not started
    # a bundle that carries the libraries itself: the child process starts, the GUI runs
    monkeypatch.setattr(qt_libraries, "_qt_starts", lambda: True)
    assert main(["gui"]) == 0 and started
