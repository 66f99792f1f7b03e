"""A bar of how much of the context window each part of a prompt takes."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from lab.ui import theme as lab_theme


class ContextBar(QWidget):
    """How much of the context window the instruction, examples and query take."""

    COLORS = {"instruction": QColor(90, 130, 200), "examples": QColor(240, 140, 40), "query": QColor(60, 170, 90),
              "new tokens": QColor(200, 200, 200)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts: dict[str, int] = {}
        self.context = 0
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_counts(self, counts: dict[str, int], context: int) -> None:
        self.counts, self.context = dict(counts), int(context or 0)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(300, 22)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = self.rect().adjusted(0, 2, -1, -2)
        p.fillRect(r, QColor(lab_theme.tone("track")))
        total = self.context or max(1, sum(self.counts.values()))
        x = float(r.left())
        for name, n in self.counts.items():
            w = r.width() * min(1.0, n / total)
            p.fillRect(QRectF(x, r.top(), w, r.height()), self.COLORS.get(name, QColor(150, 150, 150)))
            x += w
        p.setPen(QColor(lab_theme.tone("edge")))
        p.drawRect(r)
        p.end()
