"""QApplication set-up and the GUI entry point."""
from __future__ import annotations

import sys
from typing import Optional

from PySide6.QtCore import QTimer, QtMsgType, qInstallMessageHandler
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


def run(model: Optional[str] = None, device: Optional[str] = None, dtype: Optional[str] = None,
        prompt: Optional[str] = None) -> int:
    app = application()
    try:
        diagnostics.setup_logging()
    except OSError as err:               # an unwritable app-data folder must not stop the lab
        if sys.stderr is not None:
            sys.stderr.write(f"tvlab: no log file: {err}\n")
    diagnostics.install_hooks()
    from lab.ui.main_window import MainWindow

    win = MainWindow()
    s = lab_settings.settings()
    ref = model or s.value("last_model") or models.DEFAULT_MODEL
    win.show()
    QTimer.singleShot(0, lambda: win.load_model(str(ref), device or str(s.value("device", "cpu")),
                                                dtype or str(s.value("dtype", "fp32"))))
    if prompt:
        win.session.set_prompt(prompt)   # the prompt panel follows the session
    return app.exec()
