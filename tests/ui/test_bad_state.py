"""Bad state on disk: the lab starts with defaults and one notice naming what it replaced,
and a full disk never leaves a half-written file."""
import errno
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray

NOTICE = "Started with defaults"


@pytest.fixture
def zoo(tiny_gpt2, tmp_path, monkeypatch):
    """A zoo whose bard-gpt (the default model) is the tiny test model."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "bard-gpt").symlink_to(tiny_gpt2)
    monkeypatch.setenv("TVLAB_ZOO", str(folder))
    return folder


def start_window(qtbot, state):
    from lab.ui.app import begin
    from lab.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    notices = []
    win.session.notice.connect(notices.append)
    win.show()
    begin(win, state)
    qtbot.waitUntil(lambda: win.session.card is not None, timeout=60000)
    qtbot.wait(50)
    return win, notices


def test_garbage_settings_start_with_defaults_and_one_notice(qtbot, zoo):
    from lab.ui import settings as lab_settings

    s = lab_settings.settings()
    for key, value in {"last_model": "zoo:gone-for-good", "device": "cuda:7", "dtype": "int3",
                       "theme": "purple"}.items():
        s.setValue(key, value)
    s.sync()
    state = lab_settings.start_state()
    assert (state.model, state.dtype, state.theme) == ("zoo:bard-gpt", "fp32", "system")
    win, notices = start_window(qtbot, state)
    assert win.session.card.device == "cpu" and win.session.card.ref == "zoo:bard-gpt"
    mine = [n for n in notices if NOTICE in n]
    assert len(mine) == 1, notices
    for named in ("zoo:gone-for-good", "cuda:7", "int3", "purple"):
        assert named in mine[0]
    s = lab_settings.settings()
    assert (s.value("dtype"), s.value("theme"), s.value("device")) == ("fp32", "system", "cpu")
    win.session.shutdown()


def test_good_settings_start_without_a_notice(qtbot, zoo):
    from lab.ui import settings as lab_settings

    s = lab_settings.settings()
    s.setValue("last_model", "zoo:bard-gpt")
    s.setValue("dtype", "fp32")
    s.sync()
    state = lab_settings.start_state()
    assert state.resets == []
    win, notices = start_window(qtbot, state)
    assert not [n for n in notices if NOTICE in n]
    win.session.shutdown()


def test_a_corrupt_window_layout_gives_the_default_layout_and_says_so(qtbot, zoo):
    from lab.ui import settings as lab_settings

    s = lab_settings.settings()
    s.setValue("window_state", QByteArray(b"\x00\x01 not a layout"))
    s.setValue("geometry", "not a geometry")
    s.sync()
    win, notices = start_window(qtbot, lab_settings.start_state())
    assert not win.docks["attention"].isHidden() and not win.docks["model"].isHidden()
    mine = [n for n in notices if NOTICE in n]
    assert len(mine) == 1 and "layout" in mine[0] and "window size" in mine[0]
    assert lab_settings.settings().value("window_state") is None     # not tried again next time
    win.session.shutdown()


def test_an_unwritable_settings_folder_is_named(tmp_path, monkeypatch):
    from lab.ui import settings as lab_settings

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("TVLAB_SETTINGS_DIR", str(blocker / "settings"))
    state = lab_settings.start_state()
    assert any("not writable" in r for r in state.resets)
    assert state.model and state.device == "cpu"


def test_an_unreadable_lessons_folder_is_named_and_the_lab_lists_its_own(qtbot, monkeypatch):
    from lab.ui import settings as lab_settings

    folder = lab_settings.user_lessons_dir()
    folder.mkdir(parents=True)
    real_iterdir, real_listdir = Path.iterdir, os.listdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_iterdir(self)

    def listdir(path="."):
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)    # root reads through permission bits
    monkeypatch.setattr(os, "listdir", listdir)
    state = lab_settings.start_state()
    assert any("lessons folder" in r and "cannot be read" in r for r in state.resets)
    lessons = lab_settings.load_lessons()
    usable = [lesson for lesson in lessons if lesson.ok]
    broken = [lesson for lesson in lessons if not lesson.ok]
    assert usable and len(broken) == 1 and "cannot be read" in broken[0].problem
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)          # the lessons panel and menu build anyway
    qtbot.addWidget(win)
    win.lessons_menu.aboutToShow.emit()
    win.session.shutdown()


def test_a_full_disk_during_session_export_leaves_nothing(qtbot, zoo, tmp_path, monkeypatch):
    from lab.ui import workshop as wl
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.name == "session.json":
            real(self, text[: len(text) // 2], *args, **kwargs)       # half of it reached the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    target = tmp_path / "exports"
    target.mkdir()
    shown = []
    assert wl.export_to(win, target, show=lambda title, message: shown.append(message)) is None
    assert list(target.iterdir()) == [] and "No space left" in shown[-1]
    win.session.shutdown()
