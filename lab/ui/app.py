"""QApplication set-up and the GUI entry point."""
from __future__ import annotations

import sys
from typing import Optional

from PySide6.QtCore import QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from lab.core import models
from lab.ui import diagnostics, wheel_guard
from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.collector import collect_on_gui_thread

# Harmless platform chatter that would otherwise clutter stderr (the CLI promises one line).
_QUIET = ("propagateSizeHints", "QFont::setPointSizeF", "This plugin does not support")


def _qt_messages(kind, context, message: str) -> None:
    if any(q in message for q in _QUIET):
        return
    if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg):
        diagnostics.log.getChild("qt").info("%s", message)
        if sys.stderr is not None:       # a windowed bundle has none
            sys.stderr.write(f"qt: {message}\n")


def application(argv: Optional[list[str]] = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        qInstallMessageHandler(_qt_messages)
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName(diagnostics.APPLICATION)
        app.setOrganizationName(diagnostics.ORGANIZATION)
        app.setDesktopFileName("tvlab")
    collect_on_gui_thread(app)
    wheel_guard.install(app)
    lab_theme.apply(app, str(lab_settings.settings().value("theme", "system")))
    lab_theme.follow_system(app, lambda: str(lab_settings.settings().value("theme", "system")))
    return app


def begin(win, start: lab_settings.StartState) -> None:
    """Load the start's model once the worker knows the devices (torch is imported there,
    while the window is on screen); say in one notice what the start replaced."""
    resets = list(start.resets) + list(win.restore_problems)
    win.session.model_loading.emit(start.model)   # "Loading …" from the first paint on

    def go(available: list) -> None:
        device = start.device
        why = lab_settings.unavailable_device(device, available)
        if why:
            resets.append(why)
            device = "cpu"
        if resets:
            win.session.notice.emit(lab_settings.start_notice(resets))
        win.load_model(start.model, device, start.dtype)

    win.session.request("startup.devices", lambda _lm, _job: models.available_devices(), go,
                        lambda _message: go(["cpu"]), label="detecting devices", needs_model=False, quiet=True)


def run(model: Optional[str] = None, device: Optional[str] = None, dtype: Optional[str] = None,
        prompt: Optional[str] = None) -> int:
    start = lab_settings.start_state(model, device, dtype)   # corrects the settings first
    app = application()
    try:
        diagnostics.setup_logging()
    except OSError as err:               # an unwritable app-data folder must not stop the lab
        if sys.stderr is not None:
            sys.stderr.write(f"tvlab: no log file: {err}\n")
    diagnostics.install_hooks()
    from lab.ui.main_window import MainWindow

    win = MainWindow()
    win.show()
    begin(win, start)
    if prompt:
        win.session.set_prompt(prompt)   # the prompt panel follows the session
    return app.exec()
