"""Lessons: the side panel of workshop mode — pick a lesson, read it, try its steps.

The lessons themselves are data files (resources/lessons/, or the workshop leader's own
folder: see resources/lessons/README.md); the workshop's LessonRunner (lab.ui.workshop),
which the main window attaches, runs them.
"""
from __future__ import annotations

import html
from typing import Optional

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QTextBrowser, QVBoxLayout

from lab.ui import settings as lab_settings
from lab.ui.panels.base import Panel

WELCOME = ("<p>Each lesson sets the lab up for one topic of the course: it loads a model, "
           "types a prompt, selects what to look at and brings the right panel forward.</p>"
           "<p>Pick a lesson above and press <b>Start</b>, then follow the <b>Try this</b> steps. "
           "The Lessons menu has the same list, the presenter options and session export.</p>")


class LessonsPanel(Panel):
    panel_id = "lessons"
    title = "Lessons"
    area = "left"
    tab_with = "model"
    order = 90

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.runner = None
        self.lessons = []
        self.current = None
        self.list = QListWidget()
        self.list.setObjectName("lessons-list")
        self.list.setMaximumHeight(190)
        self.list.setWordWrap(True)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemDoubleClicked.connect(lambda _item: self.start())
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Load this lesson's model and prompt and bring its panel forward")
        self.start_button.clicked.connect(self.start)
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.prev_button.clicked.connect(lambda: self._step(-1))
        self.next_button.clicked.connect(lambda: self._step(+1))
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.25 if font.pointSizeF() > 0 else 12)
        font.setBold(True)
        self.heading.setFont(font)
        self.text = QTextBrowser()
        self.text.setObjectName("lessons-text")
        self.text.setOpenExternalLinks(False)
        self.status = QLabel()
        self.status.setObjectName("lessons-status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)

        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.next_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.list)
        lay.addLayout(buttons)
        lay.addWidget(self.heading)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.status)
        self.reload()

    def sizeHint(self) -> QSize:
        return QSize(380, 600)

    # --- wiring ----------------------------------------------------------------------
    def attach(self, runner) -> None:
        """Start lessons with the window's LessonRunner and show what it reports."""
        self.runner = runner
        runner.status.connect(self.set_status)
        runner.started.connect(self.show_lesson)

    def reload(self) -> None:
        keep = self.current.id if self.current else None
        self.lessons = lab_settings.load_lessons()
        self.list.blockSignals(True)
        self.list.clear()
        for lesson in self.lessons:
            item = QListWidgetItem(lesson.title if lesson.ok else f"{lesson.title}\n   unavailable: {lesson.problem}")
            item.setData(Qt.UserRole, lesson.id)
            item.setToolTip(lesson.problem or lesson.topic or lesson.title)
            if not lesson.ok:
                item.setFlags(item.flags() & ~Qt.ItemIsEnabled)
            self.list.addItem(item)
        self.list.blockSignals(False)
        row = next((i for i, l in enumerate(self.lessons) if l.id == keep), None)
        if row is not None:
            self.list.setCurrentRow(row)
        else:
            self.heading.setText("Workshop lessons")
            self.text.setHtml(WELCOME)
        self._update_buttons()

    # --- showing and starting -------------------------------------------------------------
    def lesson(self, lesson_id: str):
        return next((l for l in self.lessons if l.id == lesson_id), None)

    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.lessons):
            self.show_lesson(self.lessons[row], start=False)
        self._update_buttons()

    def show_lesson(self, lesson, start: bool = False) -> None:
        self.current = lesson
        row = next((i for i, l in enumerate(self.lessons) if l.id == lesson.id), -1)
        if row >= 0 and self.list.currentRow() != row:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
        self.heading.setText(lesson.title)
        self.text.setHtml(lesson_html(lesson))
        if not lesson.ok:
            self.set_status(lesson.problem)
        self._update_buttons()
        if start:
            self.start()

    def start(self, lesson=None) -> bool:
        lesson = lesson or self.current
        if lesson is None:
            return False
        if lesson is not self.current:
            self.show_lesson(lesson)
        if self.runner is None:
            self.set_status("Lessons run in the lab's window.")
            return False
        return self.runner.start(lesson)

    def _step(self, delta: int) -> None:
        usable = [i for i, l in enumerate(self.lessons) if l.ok]
        if not usable:
            return
        row = self.list.currentRow()
        later = [i for i in usable if (i > row if delta > 0 else i < row)]
        if later:
            self.list.setCurrentRow(later[0] if delta > 0 else later[-1])

    def _update_buttons(self) -> None:
        ok = self.current is not None and self.current.ok
        self.start_button.setEnabled(ok)
        row = self.list.currentRow()
        usable = [i for i, l in enumerate(self.lessons) if l.ok]
        self.prev_button.setEnabled(any(i < row for i in usable))
        self.next_button.setEnabled(any(i > row for i in usable) or row < 0 and bool(usable))

    def set_status(self, text: Optional[str]) -> None:
        self.status.setText(text or "")

    def restore_defaults(self) -> None:
        self.current = None
        self.list.setCurrentRow(-1)
        self.heading.setText("Workshop lessons")
        self.text.setHtml(WELCOME)
        self.set_status("")
        self._update_buttons()

    def lesson_state(self) -> dict:
        return {"lesson": self.current.id if self.current else None}


def lesson_html(lesson) -> str:
    e = html.escape
    if not lesson.ok:
        return f"<p><b>This lesson cannot be used:</b> {e(lesson.problem or '')}</p><p>File: {e(str(lesson.path))}</p>"
    paras = "".join(f"<p>{e(p)}</p>" for p in lesson.explanation.split("\n\n") if p.strip())
    steps = "".join(f"<li style='margin-bottom:4px'>{e(s)}</li>" for s in lesson.steps)
    bits = []
    if lesson.model:
        bits.append(f"model <code>{e(lesson.model)}</code>")
    if lesson.prompt:
        bits.append(f"prompt “{e(lesson.prompt)}”")
    setup = f"<p style='color:gray'>Sets up: {'; '.join(bits)}.</p>" if bits else ""
    return f"{paras}<h3>Try this</h3><ol>{steps}</ol>{setup}"
