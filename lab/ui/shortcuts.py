"""Window-wide keys beyond the menus' own: zoom of the main views (Ctrl++ / Ctrl+- / Ctrl+0),
full screen (F11) and the current lesson's text (F1)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QMainWindow

ZOOM_STEPS = (0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0)


class ViewKeys:
    """Adds its actions to the window's View and Help menus; ``zoom`` is the main views' scale."""

    def __init__(self, window: QMainWindow, view_menu, help_menu, docks: dict, panels: dict,
                 lesson_panel: str = "lessons"):
        self.window, self.docks, self.panels, self.lesson_panel = window, docks, panels, lesson_panel
        self.step = ZOOM_STEPS.index(1.0)
        self.actions = {}
        for key, text, shortcut, slot in (
                ("zoom_in", "Zoom &in on the main views", QKeySequence.ZoomIn, lambda: self.zoom_by(1)),
                ("zoom_out", "Zoom &out of the main views", QKeySequence.ZoomOut, lambda: self.zoom_by(-1)),
                ("zoom_reset", "&Actual size", QKeySequence("Ctrl+0"), lambda: self.zoom_by(0)),
                ("full_screen", "&Full screen", QKeySequence("F11"), self.toggle_full_screen)):
            act = QAction(text, window, shortcut=shortcut)
            act.setShortcutContext(Qt.ApplicationShortcut)
            act.triggered.connect(slot)
            view_menu.addAction(act)
            self.actions[key] = act
        self.actions["zoom_in"].setShortcuts([QKeySequence.ZoomIn, QKeySequence("Ctrl+=")])
        self.actions["full_screen"].setCheckable(True)
        lesson = QAction("Current &lesson's help", window, shortcut=QKeySequence("F1"))
        lesson.triggered.connect(self.show_lesson)
        help_menu.insertAction(help_menu.actions()[0] if help_menu.actions() else None, lesson)
        self.actions["lesson_help"] = lesson

    @property
    def zoom(self) -> float:
        return ZOOM_STEPS[self.step]

    def main_views(self) -> list:
        return [d for d in self.docks.values() if self.window.dockWidgetArea(d) == Qt.RightDockWidgetArea]

    def zoom_by(self, direction: int) -> None:
        """One step larger (1), smaller (-1) or back to 1 (0): the main views' text scales."""
        self.step = ZOOM_STEPS.index(1.0) if direction == 0 else \
            max(0, min(len(ZOOM_STEPS) - 1, self.step + direction))
        base = QApplication.font().pointSizeF()
        for dock in self.main_views():
            widget = dock.widget()
            if self.zoom == 1.0:
                widget.setFont(QApplication.font())
            else:
                font = widget.font()
                font.setPointSizeF(base * self.zoom)
                widget.setFont(font)

    def toggle_full_screen(self) -> None:
        w = self.window
        w.showNormal() if w.isFullScreen() else w.showFullScreen()
        self.actions["full_screen"].setChecked(w.isFullScreen())

    def show_lesson(self) -> None:
        """The lessons panel, shown and in front, with its text focused."""
        dock = self.docks.get(self.lesson_panel)
        if dock is None:
            return
        dock.show()
        dock.raise_()
        self.panels[self.lesson_panel].take_focus()
