"""A column of controls that scrolls up and down but never sideways: it asks its holder
for the width its content needs (at any font size) instead of hiding part of it."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class ColumnScroll(QScrollArea):
    def __init__(self, content: QWidget, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.NoFrame)
        self.setWidget(content)
        content.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:
        content = self.widget()
        hint = super().minimumSizeHint()
        if content is None:
            return hint
        need = content.minimumSizeHint().expandedTo(content.minimumSize()).width()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(need + bar + 2 * self.frameWidth(), hint.height())

    def eventFilter(self, obj, event):
        if obj is self.widget() and event.type() == QEvent.LayoutRequest:
            self.updateGeometry()          # its content's minimum changed (a font, a text)
        return False
