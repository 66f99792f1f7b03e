"""Plots that share a row while there is room, and wrap onto more rows when there is not,
so a narrow window never cuts their titles and axes (the checks are lab.ui.fit_check)."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QGridLayout, QWidget


class PlotGrid(QWidget):
    """Lays ``widgets`` out in as many columns as ``min_width`` px each allow (in pixels
    of the application font's 9 pt; larger fonts ask for more)."""

    def __init__(self, widgets: list[QWidget], min_width: int = 300, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.widgets = list(widgets)
        self.min_width = min_width
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.columns = 0
        self._arrange(len(self.widgets))

    def column_width(self) -> int:
        pt = self.font().pointSizeF()
        return int(self.min_width * max(1.0, (pt if pt > 0 else 9.0) / 9.0))

    def columns_for(self, width: int) -> int:
        return max(1, min(len(self.widgets), width // max(1, self.column_width())))

    def _arrange(self, columns: int) -> None:
        if columns == self.columns:
            return
        for w in self.widgets:
            self.grid.removeWidget(w)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        for i, w in enumerate(self.widgets):
            self.grid.addWidget(w, i // columns, i % columns)
        for c in range(columns):
            self.grid.setColumnStretch(c, 1)
        for r in range((len(self.widgets) + columns - 1) // columns):
            self.grid.setRowStretch(r, 1)
        self.columns = columns

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange(self.columns_for(event.size().width()))
