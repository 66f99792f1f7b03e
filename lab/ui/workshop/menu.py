"""The Lessons menu: every lesson file (unusable ones disabled, with the reason), the
user's lessons folder, the presenter options and "Export session…"."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from lab.ui import settings as lab_settings
from lab.ui.workshop.export import export_to
from lab.ui.workshop.presenter import (
    HIGH_CONTRAST,
    large_fonts_shown,
    presenter_layout_shown,
    reset_everything,
    set_large_fonts,
    set_presenter_layout,
)

if TYPE_CHECKING:
    from lab.ui.main_window import MainWindow


class LessonsMenu(QMenu):
    """Rebuilt each time it opens, so a new or edited lesson file shows up at once."""

    def __init__(self, window: "MainWindow"):
        super().__init__("&Lessons", window)
        self.window = window
        self.setObjectName("menu-lessons")
        self.setToolTipsVisible(True)
        self.presenter_actions: dict[str, QAction] = {}
        self.aboutToShow.connect(self.fill)
        self.fill()

    def lesson_actions(self) -> list[QAction]:
        return [a for a in self.actions() if a.data()]

    def fill(self) -> None:
        window = self.window
        self.clear()
        lessons = lab_settings.load_lessons()
        for lesson in lessons:
            text = lesson.title if lesson.ok else f"{lesson.title} — unavailable"
            act = QAction(text, self)
            act.setData(lesson.id)
            act.setEnabled(lesson.ok)
            tip = lesson.problem or (lesson.topic and f"Topic: {lesson.topic}") or lesson.title
            act.setToolTip(tip)
            act.setStatusTip(tip)
            act.triggered.connect(lambda _=False, l=lesson: window.lesson_runner.start(l))
            self.addAction(act)
        if not lessons:
            none = self.addAction("No lessons found")
            none.setEnabled(False)
        self.addSeparator()
        folder = self.addAction("Open my lessons folder…")
        folder.setToolTip(f"Put your own lesson files here: {lab_settings.user_lessons_dir()}")
        folder.triggered.connect(self._open_lessons_folder)
        self.addSeparator()
        large = QAction("Presenter: &larger fonts", self, checkable=True)
        large.setChecked(large_fonts_shown())
        large.toggled.connect(lambda on: set_large_fonts(on))
        layout = QAction("Presenter: &layout (main views large, side docks hidden)", self, checkable=True)
        layout.setChecked(presenter_layout_shown(window))
        layout.toggled.connect(lambda on: set_presenter_layout(window, on))
        contrast = QAction("Presenter: &high-contrast theme", self, checkable=True)
        contrast.setChecked(str(lab_settings.settings().value("theme", "system")) == HIGH_CONTRAST)
        contrast.toggled.connect(lambda on: window.set_theme(HIGH_CONTRAST if on else "system"))
        reset = QAction("&Reset everything…", self)
        reset.setToolTip("Default layout, theme and fonts; clear prompt, selection and saved settings")
        reset.triggered.connect(self._confirm_reset)
        for a in (large, layout, contrast, reset):
            self.addAction(a)
        self.presenter_actions = {"large_fonts": large, "layout": layout, "high_contrast": contrast}
        self.addSeparator()
        export = QAction("&Export session…", self)
        export.setToolTip("Save prompt, settings and a picture of every view to a folder with an HTML page")
        export.triggered.connect(self._export_dialog)
        self.addAction(export)

    def _open_lessons_folder(self) -> None:
        d = lab_settings.user_lessons_dir()
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.window.session.error.emit(f"Cannot create {d}: {err.strerror or err}.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(d)))

    def _confirm_reset(self) -> None:
        answer = QMessageBox.question(self.window, "Reset everything",
                                      "Reset the layout, theme, fonts, prompt and selection, and clear saved settings?")
        if answer == QMessageBox.Yes:
            reset_everything(self.window)
            self.fill()   # the presenter options show their new (off) state

    def _export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Export the session into this folder",
                                                  str(Path.home()))
        if folder:
            export_to(self.window, folder)
