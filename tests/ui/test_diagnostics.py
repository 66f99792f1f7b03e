"""Diagnostics: unhandled errors and worker bugs land in the log file; the dialog copies a report;
the Help menu has the log, the report, About (versions, licences) and About Qt."""
import threading

import pytest

import lab


@pytest.fixture
def logged(tmp_path):
    """The lab's logging and hooks set up in a temporary folder; undone afterwards."""
    from lab.ui import diagnostics

    path = diagnostics.setup_logging(tmp_path / "logs")
    diagnostics.install_hooks()
    yield path
    diagnostics.uninstall_hooks()
    diagnostics.stop_logging()


def _flush():
    from lab.ui import diagnostics

    for h in diagnostics.log.handlers:
        h.flush()


@pytest.mark.qt_no_exception_capture
def test_unhandled_error_in_a_gui_slot_is_logged_and_offers_a_report(qtbot, qapp, logged):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from lab.ui import diagnostics

    def broken_slot():
        raise ValueError("the slot broke on purpose")

    QTimer.singleShot(0, broken_slot)
    qtbot.waitUntil(lambda: diagnostics.error_dialog() is not None, timeout=5000)
    _flush()
    text = logged.read_text()
    assert "unhandled error on the GUI thread" in text
    assert "Traceback" in text and "ValueError: the slot broke on purpose" in text and "broken_slot" in text
    box = diagnostics.error_dialog()
    assert "ValueError: the slot broke on purpose" in box.text() and str(logged) in box.text()
    copy = next(b for b in box.buttons() if b.text() == "Copy report")
    QApplication.clipboard().clear()
    copy.click()
    report = QApplication.clipboard().text()
    assert report.startswith("Transformer Visual Lab diagnostic report")
    assert "tvlab" in report and lab.__version__ in report and "ValueError: the slot broke on purpose" in report
    assert box.standardButtons() & QMessageBox.Close


def test_unhandled_error_in_a_python_thread_is_logged(qtbot, logged):
    from lab.ui import diagnostics

    t = threading.Thread(target=lambda: 1 / 0, name="side-thread")
    t.start()
    t.join()
    _flush()
    text = logged.read_text()
    assert "unhandled error in thread side-thread" in text and "ZeroDivisionError" in text
    qtbot.waitUntil(lambda: diagnostics.error_dialog() is not None, timeout=5000)


def test_a_bug_in_a_worker_job_writes_its_traceback_to_the_log(qtbot, session, logged):
    def buggy_job(_lm, _job):
        return {}["no such key"]

    errors = []
    session.request("test.bug", buggy_job, lambda _r: None, errors.append, needs_model=False)
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert errors[0].startswith("Internal error while test.bug: KeyError")
    _flush()
    text = logged.read_text()
    assert "internal error in task 'test.bug' on ModelWorkerThread" in text
    assert "Traceback" in text and "buggy_job" in text and "KeyError: 'no such key'" in text


def test_log_rotates_and_faulthandler_writes_beside_it(logged):
    import faulthandler

    from lab.ui import diagnostics

    handler = diagnostics.log.handlers[0]
    assert handler.maxBytes == diagnostics.LOG_BYTES and handler.backupCount == diagnostics.LOG_BACKUPS
    assert faulthandler.is_enabled()
    faulthandler.dump_traceback(diagnostics._state["fault_file"])
    diagnostics._state["fault_file"].flush()
    assert "test_log_rotates_and_faulthandler" in (logged.parent / diagnostics.FAULT_NAME).read_text()


def test_log_folder_is_the_platform_app_data_folder(monkeypatch):
    from PySide6.QtCore import QStandardPaths

    from lab.ui import diagnostics

    monkeypatch.delenv("TVLAB_LOG_DIR", raising=False)
    monkeypatch.delenv("TVLAB_SETTINGS_DIR", raising=False)
    folder = diagnostics.log_dir()
    assert str(folder) == QStandardPaths.writableLocation(QStandardPaths.AppLocalDataLocation)
    assert diagnostics.APPLICATION in str(folder)


def test_help_menu_about_report_and_log(qtbot, session, tmp_path, monkeypatch):
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QApplication, QMainWindow, QMenu

    from lab.core import environment
    from lab.ui import diagnostics, help_menu

    win = QMainWindow()
    qtbot.addWidget(win)
    menu = QMenu("&Help", win)
    help_menu.fill_help_menu(menu, win, session)
    names = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert names == ["Show &log", "&Copy diagnostic report", "&About", "About &Qt"]

    html = help_menu.about_html()
    assert lab.__version__ in html and "LGPL-3.0" in html and "Apache-2.0" in html and environment.HOMEPAGE in html
    assert set(environment.LICENCES) == {"tvlab", *(label for label, _ in environment.LIBRARIES)}

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    monkeypatch.setenv("TVLAB_LOG_DIR", str(tmp_path / "logdir"))
    assert help_menu.show_log(win)
    assert opened == [str(tmp_path / "logdir")]        # no log yet: its folder

    next(a for a in menu.actions() if a.text() == "&Copy diagnostic report").trigger()
    report = QApplication.clipboard().text()
    for name in ("python", "PySide6", "torch", "transformers", "onnxruntime", "Qt", "GPUs:", "Model:"):
        assert f"\n{name}" in report, name
    assert "none loaded" in report
    saved = dict(diagnostics._state)
    try:
        diagnostics.remember_model(None, ["cuda:0 Example GPU, 80 GB, driver 999.1"])
        assert "cuda:0 Example GPU, 80 GB, driver 999.1" in diagnostics.report()
    finally:
        diagnostics._state.update(card=saved["card"], gpus=saved["gpus"])


def test_a_bug_in_a_compute_lane_job_like_a_fit_is_logged_too(qtbot, session, logged):
    from lab.ui.controllers.base import Controller

    class BrokenFit(Controller):
        name = "test.broken_fit"
        lane = "compute"

        def fit(self, lm, job):
            raise ZeroDivisionError("the fit divided by zero")

    session.register(BrokenFit())
    errors = []
    session.send("test.broken_fit", "fit", {}, lambda _r: None, errors.append, label="fitting")
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    _flush()
    text = logged.read_text()
    assert "internal error in task 'fitting' on ComputeWorkerThread" in text
    assert "ZeroDivisionError: the fit divided by zero" in text
