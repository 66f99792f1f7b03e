"""Log-log plots: a plot factory, a sparse log axis and a cheap movable marker."""
from __future__ import annotations

import math
from typing import Optional

import pyqtgraph as pg
from PySide6.QtWidgets import QSizePolicy

from lab.ui.theme import title_size
from lab.ui.widgets import plot_export

HOLLOW_EDGE = "#8a8a8a"     # a grey that reads on the light and the dark plot backgrounds


class Marker:
    """"Your model" on a log-log plot: a TargetItem moved with setPos (a PlotDataItem's setData
    of one point costs ~1-3 ms; moving a TargetItem costs ~0.1 ms)."""

    def __init__(self, plot: pg.PlotWidget, color: str = "#e04050", hollow: bool = False):
        self.item = pg.TargetItem(pos=(0, 0), size=11, symbol="o", movable=False,
                                  pen=pg.mkPen(HOLLOW_EDGE if hollow else color, width=2),
                                  brush=None if hollow else pg.mkBrush(color))
        self.item.setZValue(20)
        self.item.hide()
        plot.addItem(self.item, ignoreBounds=True)
        self.x = self.y = None

    def set(self, x: Optional[float], y: Optional[float]) -> None:
        self.x, self.y = x, y
        if x is None or y is None or not (x > 0 and y > 0):
            self.item.hide()
            return
        self.item.setPos(math.log10(x), math.log10(y))
        self.item.show()


class SparseLogAxis(pg.AxisItem):
    """A log axis that labels decades and 2x, 5x only (pyqtgraph labels every minor tick on
    short ranges, and the labels run into each other)."""

    def logTickStrings(self, values, scale, spacing):
        strings = super().logTickStrings(values, scale, spacing)
        keep = []
        for v, text in zip(values, strings):
            m = 10 ** (v - math.floor(v + 1e-9))
            keep.append(text if min(abs(m - k) for k in (1, 2, 5)) < 1e-6 else "")
        return keep


def log_plot(title: str, x: str, y: str, sparse: bool = False) -> pg.PlotWidget:
    """A titled log-log plot with a legend, sized to share a row with others."""
    w = pg.PlotWidget(axisItems={"bottom": SparseLogAxis("bottom"), "left": SparseLogAxis("left")}
                      if sparse else None)
    plot_export.attach(w, "scaling")
    p = w.getPlotItem()
    p.setTitle(title, size=title_size(1.1))
    w.setToolTip(title)
    p.setLabel("bottom", x)
    p.setLabel("left", y)
    p.setLogMode(True, True)
    p.showGrid(True, True, alpha=0.2)
    p.addLegend(offset=(-5, 5), labelTextSize=title_size(0.85))
    for ax in ("bottom", "left"):
        p.getAxis(ax).enableAutoSIPrefix(False)     # log axes read 1e9, not 0.001 x1e+12
    # Long titles must not set the plot's minimum width: plots side by side share the space.
    w.setMinimumSize(160, 160)
    w.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)
    return w
