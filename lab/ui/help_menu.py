"""Help menu: Show log, Copy diagnostic report, About (versions and licences), About Qt.

The GPU lines of the report are read on the worker (torch is not for the GUI thread) each
time a model is loaded, so a report copied later, even from an error dialog, has them.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QUrl, qVersion
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox, QWidget

import lab
from lab.core import environment
from lab.core.environment import HOMEPAGE
from lab.ui import diagnostics


def about_html() -> str:
    vers = environment.versions()
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(vers.get(name, ''))}</td>"
        f"<td>{escape(environment.LICENCES.get(name, ''))}</td></tr>"
        for name in ("tvlab", *(label for label, _ in environment.LIBRARIES)))
    return (f"<h3>Transformer Visual Lab {escape(lab.__version__)}</h3>"
            "<p>A desktop lab for looking inside transformer language models.<br>"
            f"Released under the MIT licence. <a href='{HOMEPAGE}'>{HOMEPAGE}</a></p>"
            f"<p>Python {escape(vers['python'].split()[0])} · Qt {escape(qVersion())} · {escape(vers['platform'])}</p>"
            "<table cellspacing='6'><tr><th align='left'>component</th><th align='left'>version</th>"
            f"<th align='left'>licence</th></tr>{rows}</table>")


def show_log(parent: QWidget) -> bool:
    """Open the log in the desktop's viewer for text files (its folder if there is no log yet)."""
    path = diagnostics.log_path_in_use()
    target = path if path.exists() else path.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))
    if not ok:
        QMessageBox.information(parent, "Log", f"The log is at\n{path}")
    return ok


def copy_report(session) -> str:
    text = diagnostics.report(session.card)
    QApplication.clipboard().setText(text)
    return text


def fill_help_menu(menu: QMenu, window: QWidget, session) -> None:
    """Add the diagnostic and About actions to ``menu``; keep the report's model and GPUs fresh."""
    show = QAction("Show &log", window)
    show.setToolTip(str(diagnostics.log_path_in_use()))
    show.triggered.connect(lambda: show_log(window))
    copy = QAction("&Copy diagnostic report", window)
    copy.setToolTip("Versions, GPUs, the loaded model and the log's last lines, for a bug report")
    copy.triggered.connect(lambda: (copy_report(session),
                                    window.statusBar().showMessage("Diagnostic report copied to the clipboard", 5000)))
    about = QAction("&About", window)
    about.setMenuRole(QAction.AboutRole)
    about.triggered.connect(lambda: QMessageBox.about(window, "About Transformer Visual Lab", about_html()))
    about_qt = QAction("About &Qt", window)
    about_qt.setMenuRole(QAction.AboutQtRole)
    about_qt.triggered.connect(lambda: QMessageBox.aboutQt(window))
    for act in (show, copy):
        menu.addAction(act)
    menu.addSeparator()
    menu.addAction(about)
    menu.addAction(about_qt)

    def model_changed(card) -> None:
        diagnostics.remember_model(card)
        session.request("diagnostics.gpus", lambda _lm, _job: environment.gpu_lines(),
                        lambda lines: diagnostics.remember_model(card, lines), lambda _message: None,
                        label="reading the GPUs", needs_model=False, quiet=True)
    session.model_changed.connect(model_changed)
