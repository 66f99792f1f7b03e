"""Plots of the Tokens & embeddings panel: a labelled matrix heatmap (with an optional bar
column such as the rows' norms), a labelled 2-D scatter, and a per-layer line.

Heatmaps use ``ImageItem(axisOrder='row-major')`` with levels set once per data set
(symmetric around zero for signed values) and a colour bar, never auto-levelled.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QFontMetrics

from lab.ui import theme as lab_theme
from lab.ui.widgets import plot_export

DIVERGING = "CET-D1"
SEQUENTIAL = "viridis"


def _short(s: str, n: int = 12) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def label_ticks(labels: Sequence[str], max_ticks: int = 40) -> list[tuple[float, str]]:
    """Ticks at cell centres, thinned to at most ``max_ticks`` labels."""
    n = len(labels)
    step = max(1, math.ceil(n / max_ticks))
    return [(i + 0.5, _short(str(labels[i]))) for i in range(0, n, step)]


class MatrixView(pg.GraphicsLayoutWidget):
    """A heatmap ``values[row, column]`` with row labels, a colour bar and an optional bar column."""

    def __init__(self, title: str = "", parent=None, bars: bool = False):
        super().__init__(parent=parent)
        self.setMinimumHeight(180)
        self.plot = self.addPlot(row=0, col=0)
        self.plot.setTitle(title, size=lab_theme.title_size())
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        plot_export.attach(self, "tokens")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get(DIVERGING), interactive=False,
                                        width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.bars_plot = None
        self.bars = None
        if bars:
            self.bars_plot = self.addPlot(row=0, col=1)
            self.bars_plot.setTitle("norm", size=lab_theme.title_size())
            self.bars_plot.invertY(True)
            self.bars_plot.setYLink(self.plot)
            self.bars_plot.getAxis("left").setStyle(showValues=False)
            self.bars_plot.setMaximumWidth(110)
            self.bars_plot.setMenuEnabled(False)
            self.ci.layout.setColumnStretchFactor(0, 5)
            self.ci.layout.setColumnStretchFactor(1, 1)
        self.values = np.zeros((0, 0), np.float32)
        self.row_labels: list[str] = []

    def set_matrix(self, values: np.ndarray, row_labels: Optional[Sequence[str]] = None,
                   col_labels: Optional[Sequence[str]] = None, *, signed: bool = True,
                   levels: Optional[tuple[float, float]] = None, x_title: str = "", y_title: str = "",
                   bar_values: Optional[np.ndarray] = None, max_row_ticks: int = 40) -> None:
        v = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
        if v.ndim != 2:
            v = np.zeros((0, 0), np.float32)
        self.values = v
        self.row_labels = list(row_labels or [])
        finite = v[np.isfinite(v)] if v.size else v
        if levels is None:
            if finite.size == 0:
                levels = (-1.0, 1.0) if signed else (0.0, 1.0)
            elif signed:
                m = float(np.abs(finite).max()) or 1.0
                levels = (-m, m)
            else:
                lo, hi = float(finite.min()), float(finite.max())
                levels = (lo, hi if hi > lo else lo + 1.0)
        cmap = pg.colormap.get(DIVERGING if signed else SEQUENTIAL)
        self.colorbar.setColorMap(cmap)
        self.colorbar.setLevels(levels)
        if v.size:
            self.image.setImage(v, levels=levels, autoLevels=False)
            self.image.setRect(0, 0, v.shape[1], v.shape[0])
            self.image.show()
        else:
            self.image.clear()
        left = self.plot.getAxis("left")
        if self.row_labels:
            left.setTicks([label_ticks(self.row_labels, max_row_ticks), []])
        else:
            left.setTicks(None)
        bottom = self.plot.getAxis("bottom")
        bottom.setTicks([label_ticks(col_labels, 16), []] if col_labels else None)
        self.plot.setLabel("bottom", x_title)
        self.plot.setLabel("left", y_title)
        if v.size:
            self.plot.setRange(xRange=(0, v.shape[1]), yRange=(0, v.shape[0]), padding=0)
        if self.bars_plot is not None:
            self.bars_plot.clear()
            if bar_values is not None and len(bar_values):
                b = np.asarray(bar_values, dtype=np.float32)
                self.bars = pg.BarGraphItem(x0=np.zeros(len(b)), y=np.arange(len(b)) + 0.5, height=0.8,
                                            width=b, brush=pg.mkBrush("#6d8fc7"))
                self.bars_plot.addItem(self.bars)
                top = float(b.max()) if b.max() > 0 else 1.0
                self.bars_plot.setXRange(0, top * 1.05, padding=0)
                self.bars_plot.getAxis("bottom").setTicks([[(0, "0"), (top, f"{top:.2g}")], []])


class ScatterView(pg.PlotWidget):
    """Labelled points; prompt points stand out, neighbours are grey and linked to theirs."""

    def __init__(self, parent=None):
        super().__init__(parent=parent)
        self.setMinimumHeight(200)
        self.scatter = pg.ScatterPlotItem()
        self.addItem(self.scatter)
        self.texts: list[pg.TextItem] = []
        self.lines: list[pg.PlotDataItem] = []
        self.getPlotItem().setMenuEnabled(False)
        plot_export.attach(self, "projection")
        for ax in ("bottom", "left"):
            self.getAxis(ax).enableAutoSIPrefix(False)

    def set_points(self, coords: np.ndarray, labels: Sequence[str], kinds: Sequence[str], of: Sequence[int],
                   explained: Sequence[float] = (0.0, 0.0), selected: int = -1) -> None:
        for t in self.texts:
            self.removeItem(t)
        for ln in self.lines:
            self.removeItem(ln)
        self.texts, self.lines = [], []
        coords = np.asarray(coords, dtype=float).reshape(-1, 2)
        # Three shared brushes and one pen: pyqtgraph draws each distinct symbol once and
        # stamps it (a brush per point made it render thousands for a long prompt).
        brushes = {c: pg.mkBrush(c) for c in ("#d03030", "#1f6fe0", "#9a9a9a")}
        prompt = np.asarray([kind == "prompt" for kind in kinds], dtype=bool)
        colors = np.where(prompt, "#1f6fe0", "#9a9a9a")
        if 0 <= selected < len(colors):
            colors[selected] = "#d03030"
        self.scatter.setData(pos=coords, size=np.where(prompt, 10, 6), brush=[brushes[c] for c in colors],
                             pen=pg.mkPen(None), data=[str(lab) for lab in labels], hoverable=True,
                             tip=lambda x, y, data: str(data))
        self.autoRange()
        bold = QFont()
        bold.setBold(True)
        for i in self._labelled(coords, labels, kinds, selected):
            prompt = kinds[i] == "prompt"
            text = pg.TextItem(_short(labels[i], 14), color=QColor(lab_theme.tone("ink" if prompt else "faint")),
                               anchor=(0, 1))
            if prompt:
                text.setFont(bold)
            text.setPos(float(coords[i][0]), float(coords[i][1]))
            self.addItem(text)
            self.texts.append(text)
        links = [(j, i) for i, j in enumerate(of) if j >= 0]
        if links:    # every neighbour's link in one item: one item per link made big redraws slow
            ends = np.asarray(links).reshape(-1)
            ln = pg.PlotDataItem(coords[ends, 0], coords[ends, 1], connect="pairs",
                                 pen=pg.mkPen(lab_theme.tone("edge"), width=1))
            self.addItem(ln)
            self.lines.append(ln)
        self.setLabel("bottom", f"PC1 ({100 * float(explained[0]):.0f}% of variance)")
        self.setLabel("left", f"PC2 ({100 * float(explained[1]):.0f}% of variance)")

    def _labelled(self, coords: np.ndarray, labels: Sequence[str], kinds: Sequence[str], selected: int) -> list[int]:
        """The points that get a text label: the selected one, then the prompt's, then the
        neighbours, each only where its label's box overlaps no label placed before it, so
        labels never print over each other (every point's text is in its hover tip)."""
        if not len(coords):
            return []
        vb = self.getViewBox()
        px = [vb.mapViewToScene(QPointF(float(x), float(y))) for x, y in coords]   # after autoRange
        bold = QFont(self.font())
        bold.setBold(True)
        plain, strong = QFontMetrics(self.font()), QFontMetrics(bold)
        order = sorted(range(len(coords)), key=lambda i: (i != selected, kinds[i] != "prompt", i))
        placed: list[QRectF] = []
        out = []
        for i in order:
            fm = strong if kinds[i] == "prompt" else plain
            w, h = fm.horizontalAdvance(_short(labels[i], 14)) + 8, fm.height() + 8
            box = QRectF(px[i].x(), px[i].y() - h, w, h)             # anchored at its point's bottom left
            if any(box.intersects(p) for p in placed):
                continue
            placed.append(box)
            out.append(i)
        return out


class LayerLine(pg.PlotWidget):
    """One value per layer (cosine similarity), with the layers named on the x axis."""

    def __init__(self, parent=None):
        super().__init__(parent=parent)
        self.setMinimumHeight(180)
        self.curve = self.plot([], [], pen=pg.mkPen("#1f6fe0", width=2), symbol="o", symbolSize=7,
                               symbolBrush="#1f6fe0")
        self.getPlotItem().setMenuEnabled(False)
        plot_export.attach(self, "similarity")
        self.showGrid(x=False, y=True, alpha=0.3)
        self.values = np.zeros(0, np.float32)

    def set_values(self, labels: Sequence[str], values: np.ndarray, y_title: str = "") -> None:
        self.values = np.asarray(values, dtype=np.float32)
        x = np.arange(len(values))
        self.curve.setData(x, self.values)
        step = max(1, math.ceil(len(labels) / 12))
        names = ["emb" if lab == "embeddings" else lab.replace("layer ", "") for lab in labels]
        self.getAxis("bottom").setTicks([[(i, names[i]) for i in range(0, len(labels), step)], []])
        # Cosines on their own scale: from 0 (or -1 when a value is negative) to 1, so a small
        # change is not drawn as a fall.
        lo = 0.0 if not len(values) or float(self.values.min()) >= 0 else -1.0
        self.setYRange(lo, 1.02, padding=0)
        self.setXRange(-0.3, max(len(values) - 0.7, 0.7), padding=0)
        self.setLabel("left", y_title)
        self.setLabel("bottom", "layer (0 = embeddings)")


__all__ = ["MatrixView", "ScatterView", "LayerLine", "label_ticks"]
