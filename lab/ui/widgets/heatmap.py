"""Heatmap: one attention matrix (row = query, column = key) with token labels.

pyqtgraph ``ImageItem(axisOrder='row-major')`` fed float32 with fixed levels and a
256-entry lookup table: it never auto-levels, so the colour of 0.5 is the same in every
head and every frame. Cells the model cannot see (the causal future) are NaN, which the
image leaves transparent over a hatched background: drawn as "masked", never as zero.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

from lab.ui.widgets import plot_export

LUT_SIZE = 256


def attention_colormap() -> pg.ColorMap:
    return pg.colormap.get("viridis")


def attention_lut(cmap: Optional[pg.ColorMap] = None) -> np.ndarray:
    """A 256-entry RGBA lookup table (uint8)."""
    return (cmap or attention_colormap()).getLookupTable(0.0, 1.0, LUT_SIZE, alpha=True)


def short_label(text: str, width: int = 10) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class TokenAxis(pg.AxisItem):
    """An axis that labels cell centres with tokens, thinning them so labels never overlap."""

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.labels: list[str] = []
        self.setStyle(tickLength=0, autoExpandTextSpace=True)
        self.enableAutoSIPrefix(False)

    def set_labels(self, labels: Sequence[str]) -> None:
        self.labels = [short_label(x) for x in labels]
        self.picture = None
        self.update()

    def _min_spacing_px(self) -> float:
        if self.orientation in ("left", "right"):
            return 13.0
        longest = max((len(x) for x in self.labels), default=1)
        return 7.0 * min(longest, 10) + 8.0

    def tickValues(self, minVal, maxVal, size):
        n = len(self.labels)
        minVal, maxVal = min(minVal, maxVal), max(minVal, maxVal)   # inverted axes pass them swapped
        if n == 0 or size <= 0:
            return []
        lo, hi = max(0, int(math.floor(minVal))), min(n, int(math.ceil(maxVal)))
        if hi <= lo:
            return []
        px_per_cell = size / max(maxVal - minVal, 1e-9)
        step = max(1, int(math.ceil(self._min_spacing_px() / max(px_per_cell, 1e-9))))
        first = int(math.ceil(lo / step) * step)
        return [(step, [i + 0.5 for i in range(first, hi, step)])]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            i = int(math.floor(v))
            out.append(self.labels[i] if 0 <= i < len(self.labels) else "")
        return out


def token_plot():
    """A plot with token axes left and top, rows going down: ``(widget, plot, left, top)``."""
    graphics = pg.GraphicsLayoutWidget()
    left, top = TokenAxis("left"), TokenAxis("top")
    plot = graphics.addPlot(axisItems={"left": left, "top": top})
    plot.showAxis("top")
    plot.hideAxis("bottom")
    plot.invertY(True)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot_export.attach(graphics, "attention")
    return graphics, plot, left, top


class Heatmap(QWidget):
    """A [query, key] matrix with token axes, a fixed [0, 1] colour legend and a hover readout."""

    hovered = Signal(int, int)     # row, col; -1, -1 when the pointer leaves the matrix
    clicked = Signal(int, int)     # row, col

    def __init__(self, parent: Optional[QWidget] = None, *, levels=(0.0, 1.0), legend: bool = True,
                 value_name: str = "weight", row_name: str = "query", col_name: str = "key"):
        super().__init__(parent)
        self.levels = tuple(levels)
        self.value_name, self.row_name, self.col_name = value_name, row_name, col_name
        self.setAccessibleName(f"Heatmap of {value_name}s")
        self.setAccessibleDescription(f"Empty: rows are {row_name} tokens, columns {col_name} tokens")
        self.matrix: Optional[np.ndarray] = None
        self.row_labels: list[str] = []
        self.col_labels: list[str] = []
        self.row_offset = 0          # index of the first shown row in the full token list
        self.col_offset = 0
        self.graphics, self.plot, self.left_axis, self.top_axis = token_plot()
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)
        self.plot.setLabel("left", row_name)
        self.plot.setLabel("top", col_name)
        self.masked_bg = QGraphicsRectItem()
        self.masked_bg.setBrush(QBrush(QColor(150, 150, 150), Qt.BDiagPattern))
        self.masked_bg.setPen(QPen(Qt.NoPen))
        self.masked_bg.setZValue(-10)
        self.plot.addItem(self.masked_bg)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.lut = attention_lut()
        self.image.setLookupTable(self.lut)
        self.image.setLevels(self.levels)
        self.plot.addItem(self.image)
        self.row_marker = QGraphicsRectItem()
        self.row_marker.setPen(pg.mkPen("#e6550d", width=2, cosmetic=True))
        self.row_marker.setBrush(QBrush(Qt.NoBrush))
        self.row_marker.setZValue(10)
        self.row_marker.hide()
        self.plot.addItem(self.row_marker)
        self.colorbar = None
        if legend:
            self.colorbar = pg.ColorBarItem(values=self.levels, colorMap=attention_colormap(),
                                            interactive=False, width=12, label=value_name)
            self.graphics.addItem(self.colorbar, row=0, col=1)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.readout.setMinimumHeight(18)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.readout)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._mouse_clicked)
        self._last_hover = (-1, -1)

    # --- data -------------------------------------------------------------------------------
    def set_matrix(self, matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *,
                   mask: Optional[np.ndarray] = None, row_offset: int = 0, col_offset: int = 0,
                   keep_view: bool = False) -> None:
        """Show ``matrix[row, col]``; ``mask[row, col]`` True cells are drawn as masked."""
        m = np.array(matrix, dtype=np.float32, copy=True)
        self.setAccessibleDescription(
            f"{m.shape[0]} {self.row_name} tokens by {m.shape[1]} {self.col_name} tokens; {self.value_name} "
            f"from {self.levels[0]:g} to {self.levels[1]:g}. Rows: {' '.join(map(str, row_labels[:40]))}")
        if mask is not None:
            m[mask] = np.nan
        same_shape = self.matrix is not None and self.matrix.shape == m.shape
        self.matrix = m
        self.row_offset, self.col_offset = row_offset, col_offset
        q, k = m.shape
        if list(row_labels) != self.row_labels:
            self.row_labels = list(row_labels)
            self.left_axis.set_labels(self.row_labels)
        if list(col_labels) != self.col_labels:
            self.col_labels = list(col_labels)
            self.top_axis.set_labels(self.col_labels)
        self.image.setImage(m, autoLevels=False, levels=self.levels, lut=self.lut, autoDownsample=True)
        self.image.setRect(QRectF(0, 0, k, q))
        self.masked_bg.setRect(QRectF(0, 0, k, q))
        self.masked_bg.setVisible(bool(np.isnan(m).any()))
        if not (keep_view and same_shape):
            self.plot.getViewBox().setRange(xRange=(0, k), yRange=(0, q), padding=0)
        self._refresh_readout()

    def clear(self) -> None:
        self.matrix = None
        self.image.clear()
        self.masked_bg.hide()
        self.row_marker.hide()
        self.readout.setText(" ")

    def set_selected_row(self, row: int) -> None:
        if self.matrix is None or not 0 <= row < self.matrix.shape[0]:
            self.row_marker.hide()
            return
        self.row_marker.setRect(QRectF(0, row, self.matrix.shape[1], 1))
        self.row_marker.show()

    # --- hover ------------------------------------------------------------------------------
    def cell_at(self, scene_pos) -> tuple[int, int]:
        if self.matrix is None or not self.plot.sceneBoundingRect().contains(scene_pos):
            return -1, -1
        p = self.plot.getViewBox().mapSceneToView(scene_pos)
        r, c = int(math.floor(p.y())), int(math.floor(p.x()))
        if 0 <= r < self.matrix.shape[0] and 0 <= c < self.matrix.shape[1]:
            return r, c
        return -1, -1

    def describe(self, row: int, col: int) -> str:
        """What the hover line says about one cell."""
        if self.matrix is None or row < 0 or col < 0:
            return " "
        v = self.matrix[row, col]
        q = self.row_labels[row] if row < len(self.row_labels) else str(row)
        k = self.col_labels[col] if col < len(self.col_labels) else str(col)
        value = "masked (the model cannot look ahead)" if np.isnan(v) else f"{self.value_name} {v:.4f}"
        return (f"{self.row_name} {row + self.row_offset} “{q}” → {self.col_name} "
                f"{col + self.col_offset} “{k}”: {value}")

    def hover(self, row: int, col: int) -> None:
        self._last_hover = (row, col)
        self.readout.setText(self.describe(row, col) if row >= 0 else self._idle_text())
        self.hovered.emit(row, col)

    def _idle_text(self) -> str:
        return "Hover over a cell to read its weight." if self.matrix is not None else " "

    def _refresh_readout(self) -> None:
        r, c = self._last_hover
        if self.matrix is not None and 0 <= r < self.matrix.shape[0] and 0 <= c < self.matrix.shape[1]:
            self.readout.setText(self.describe(r, c))
        else:
            self.readout.setText(self._idle_text())

    def _mouse_moved(self, pos) -> None:
        r, c = self.cell_at(pos)
        if (r, c) != self._last_hover:
            self.hover(r, c)

    def _mouse_clicked(self, event) -> None:
        r, c = self.cell_at(event.scenePos())
        if r >= 0:
            self.clicked.emit(r, c)
