"""The lab's record of what went wrong: a rotating log file, faulthandler, and the hooks that
turn an unhandled error into a log entry and a dialog that offers to copy a report.

A windowed bundle on Windows or macOS has no stderr, so a traceback printed there is lost;
everything goes to ``tvlab.log`` in the platform's app-data folder
(``QStandardPaths.AppLocalDataLocation``) instead, and to stderr as well when there is one.
Nothing here imports torch: the log is set up before the first model is touched.
"""
from __future__ import annotations

import datetime
import faulthandler
import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QCoreApplication, QObject, QStandardPaths, Signal, qVersion
from PySide6.QtGui import QGuiApplication

from lab.core import environment

ORGANIZATION = "TransformerVisualLab"
APPLICATION = "Transformer Visual Lab"
LOG_NAME = "tvlab.log"
FAULT_NAME = "tvlab-faults.log"
LOG_BYTES = 1_000_000          # per file; with LOG_BACKUPS older files the log stays under 4 MB
LOG_BACKUPS = 3

log = logging.getLogger("lab")

_state: dict = {"handlers": [], "fault_file": None, "hooks": None, "reporter": None, "gpus": None,
          "card": None}


def log_dir() -> Path:
    """Where the log lives: ``TVLAB_LOG_DIR``, else beside ``TVLAB_SETTINGS_DIR`` (tests), else
    the platform's app-data folder (e.g. ~/.local/share/TransformerVisualLab/Transformer Visual Lab
    on Linux, %LOCALAPPDATA%\\TransformerVisualLab\\Transformer Visual Lab on Windows)."""
    if os.environ.get("TVLAB_LOG_DIR"):
        return Path(os.environ["TVLAB_LOG_DIR"]).expanduser()
    if os.environ.get("TVLAB_SETTINGS_DIR"):
        return Path(os.environ["TVLAB_SETTINGS_DIR"]).expanduser() / "logs"
    QCoreApplication.setOrganizationName(ORGANIZATION)   # static: works before any QApplication
    QCoreApplication.setApplicationName(APPLICATION)
    return Path(QStandardPaths.writableLocation(QStandardPaths.AppLocalDataLocation))


def log_path() -> Path:
    return log_dir() / LOG_NAME


def setup_logging(folder: Optional[Path] = None) -> Path:
    """Send the ``lab`` loggers to the rotating log file (and stderr when there is one), and
    faulthandler's dumps to the fault file beside it. Calling it again changes nothing."""
    if _state["handlers"]:
        return Path(_state["handlers"][0].baseFilename)
    folder = Path(folder) if folder is not None else log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    handler = logging.handlers.RotatingFileHandler(folder / LOG_NAME, maxBytes=LOG_BYTES,
                                                   backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(fmt)
    handlers = [handler]
    if sys.stderr is not None:    # a terminal still sees errors, as before
        err = logging.StreamHandler(sys.stderr)
        err.setLevel(logging.WARNING)
        err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(err)
    for h in handlers:
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    _state["handlers"] = handlers
    fault = open(folder / FAULT_NAME, "a", encoding="utf-8")   # held open: faulthandler writes to its fd
    faulthandler.enable(fault, all_threads=True)
    _state["fault_file"] = fault
    log.info("tvlab %s started (Python %s, Qt %s)", environment.versions()["tvlab"],
             sys.version.split()[0], qVersion())
    return folder / LOG_NAME


def stop_logging() -> None:
    """Undo ``setup_logging`` (tests; the end of a run)."""
    for h in _state["handlers"]:
        log.removeHandler(h)
        h.close()
    _state["handlers"] = []
    log.propagate = True
    if _state["fault_file"] is not None:
        faulthandler.disable()
        _state["fault_file"].close()
        _state["fault_file"] = None


# --- unhandled errors ----------------------------------------------------------------------

class _Reporter(QObject):
    """Lives on the GUI thread; a hook on any thread emits, the dialog opens on the GUI thread."""
    error = Signal(str)

    def __init__(self):
        super().__init__()
        self.dialog = None
        self.error.connect(self._show)

    def _show(self, summary: str) -> None:
        from PySide6.QtWidgets import QApplication, QMessageBox

        if self.dialog is not None and self.dialog.isVisible():
            return                       # one dialog at a time; the log has every error
        box = QMessageBox(QMessageBox.Warning, "Something went wrong",
                          f"{summary}\n\nThe lab keeps running. The details are in the log:\n{log_path_in_use()}",
                          QMessageBox.Close, QApplication.activeWindow())
        copy = box.addButton("Copy report", QMessageBox.ActionRole)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(report()))
        box.open()                       # not exec(): an error must not start a nested event loop
        if self.dialog is not None:
            self.dialog.deleteLater()
        self.dialog = box


def log_path_in_use() -> Path:
    return Path(_state["handlers"][0].baseFilename) if _state["handlers"] else log_path()


def _handle(exc_type, exc, tb, where: str) -> None:
    log.error("unhandled error %s", where, exc_info=(exc_type, exc, tb))
    reporter = _state["reporter"]
    if reporter is not None:
        reporter.error.emit(f"{exc_type.__name__}: {exc}")


def _sys_hook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _handle(exc_type, exc, tb, "on the GUI thread" if threading.current_thread() is threading.main_thread()
            else f"on {threading.current_thread().name}")


def _thread_hook(args) -> None:
    if args.exc_type is SystemExit:
        return
    _handle(args.exc_type, args.exc_value, args.exc_traceback,
            f"in thread {args.thread.name if args.thread else '?'}")


def install_hooks() -> None:
    """Route unhandled errors (GUI thread, Python threads) to the log and the dialog. Call on
    the GUI thread once a QApplication exists."""
    if _state["hooks"] is None:
        _state["hooks"] = (sys.excepthook, threading.excepthook)
    sys.excepthook = _sys_hook
    threading.excepthook = _thread_hook
    if _state["reporter"] is None:
        _state["reporter"] = _Reporter()


def uninstall_hooks() -> None:
    if _state["hooks"] is not None:
        sys.excepthook, threading.excepthook = _state["hooks"]
        _state["hooks"] = None
    reporter = _state["reporter"]
    _state["reporter"] = None
    if reporter is not None:
        if reporter.dialog is not None:
            reporter.dialog.close()
        reporter.deleteLater()


def error_dialog():
    """The dialog the last unhandled error opened (None if none is open)."""
    reporter = _state["reporter"]
    return reporter.dialog if reporter is not None and reporter.dialog is not None \
        and reporter.dialog.isVisible() else None


# --- the report ----------------------------------------------------------------------------

def remember_model(card, gpus: Optional[list[str]] = None) -> None:
    """The loaded model's card and the GPU lines a worker read (``environment.gpu_lines``):
    the report an error dialog copies quotes them."""
    _state["card"] = card
    if gpus is not None:
        _state["gpus"] = list(gpus)


def tail(path: Path, lines: int = 60) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200 * lines))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


_REMEMBERED = object()


def report(card=_REMEMBERED, log_lines: int = 60) -> str:
    """Plain text for a bug report: versions, Qt, GPUs, the model's card (default: the one
    ``remember_model`` was told about), the log's end."""
    card = _state["card"] if card is _REMEMBERED else card
    out = ["Transformer Visual Lab diagnostic report",
           f"made {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC", ""]
    vers = environment.versions()
    width = max(len(k) for k in vers)
    out += [f"{k:<{width}}  {v}" for k, v in vers.items()]
    app = QCoreApplication.instance()
    platform_name = app.platformName() if isinstance(app, QGuiApplication) else ""
    out.append(f"{'Qt':<{width}}  {qVersion()}" + (f" (platform plugin {platform_name})" if platform_name else ""))
    out += ["", "GPUs:"] + ["  " + g for g in (_state["gpus"] or ["not read yet (load a model first)"])]
    out += ["", "Model:"]
    if card is None:
        out.append("  none loaded")
    else:
        out += [f"  {k}: {v}" for k, v in card.to_dict().items()]
    path = log_path_in_use()
    out += ["", f"Log ({path}), last lines:"] + ["  " + line for line in tail(path, log_lines)]
    faults = tail(path.with_name(FAULT_NAME), 40)
    if faults:
        out += ["", "Fault handler dumps (last lines):"] + ["  " + line for line in faults]
    return "\n".join(out) + "\n"

