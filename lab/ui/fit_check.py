"""Does a view fit its window? The checks `tvlab selftest` and the tests share: a
horizontal scroll bar in a panel's main view, a plot whose data lies outside its view
range, and a plot title, axis label or legend wider than the plot that shows it."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtWidgets import QAbstractScrollArea, QWidget

_DATA_ITEMS = (pg.PlotDataItem, pg.PlotCurveItem, pg.ScatterPlotItem, pg.BarGraphItem)
TOLERANCE = 0.01      # of the view's span: a bar's pen may stick out this far


_GENERIC = {"QWidget", "QStackedWidget", "QSplitter", "QFrame", "QTabWidget", "QScrollArea"}


def _name(w: QWidget, root: QWidget) -> str:
    """The widget's objectName, or its class and its nearest named/specific holder."""
    parts = []
    while w is not None and w is not root and len(parts) < 2:
        name = w.objectName()
        if name and not name.startswith("qt_"):
            parts.append(name)
            break
        if type(w).__name__ not in _GENERIC or not parts:
            parts.append(type(w).__name__)
        w = w.parentWidget()
    return " in ".join(parts) or type(root).__name__


def _ancestors(w: QWidget):
    w = w.parentWidget()
    while w is not None:
        yield w
        w = w.parentWidget()


def horizontal_scrolls(root: QWidget) -> list[str]:
    """A line for each shown scroll area in or around ``root`` that scrolls sideways."""
    areas = [a for a in _ancestors(root) if isinstance(a, QAbstractScrollArea)]
    areas += root.findChildren(QAbstractScrollArea)
    out = []
    for area in areas:
        if isinstance(area, pg.GraphicsView) or not area.isVisible():
            continue
        bar = area.horizontalScrollBar()
        if bar.isVisible() and bar.maximum() > 0:
            out.append(f"{_name(area, root)} scrolls sideways ({bar.maximum()} px hidden)")
    return out


def _plots(root: QWidget) -> list[pg.PlotItem]:
    views = [v for v in root.findChildren(pg.GraphicsView) if v.isVisible()]
    if isinstance(root, pg.GraphicsView) and root.isVisible():
        views.append(root)
    plots = []
    for view in views:
        scene = view.scene()
        if scene is not None:
            plots += [i for i in scene.items() if isinstance(i, pg.PlotItem) and i.isVisible()]
    return plots


def _bounds(item, axis: int):
    if isinstance(item, pg.BarGraphItem):
        r = item.mapRectToParent(item.boundingRect())
        return (r.left(), r.right()) if axis == 0 else (r.top(), r.bottom())
    lo, hi = item.dataBounds(axis)
    return lo, hi


def _title(plot: pg.PlotItem) -> str:
    return plot.titleLabel.text or ""


def data_outside(root: QWidget) -> list[str]:
    """A line for each shown plot whose data reaches beyond its view range."""
    out = []
    for plot in _plots(root):
        vb = plot.getViewBox()
        for item in vb.addedItems:
            if not isinstance(item, _DATA_ITEMS) or not item.isVisible():
                continue
            for axis, (v0, v1) in enumerate(vb.viewRange()):
                try:
                    lo, hi = _bounds(item, axis)
                except (TypeError, ValueError):
                    continue
                if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
                    continue
                tol = TOLERANCE * max(v1 - v0, 1e-12)
                if lo < v0 - tol or hi > v1 + tol:
                    label = _title(plot) or plot.getAxis("left").labelText or "a plot"
                    out.append(f"{_name(plot.getViewBox().getViewWidget(), root)}: data of '{label}' "
                               f"{'xy'[axis]} {lo:.4g}..{hi:.4g} lies outside the view {v0:.4g}..{v1:.4g}")
                    break
    return out


def text_cut(root: QWidget) -> list[str]:
    """A line for each shown plot title, axis label or legend wider than its room."""
    out = []
    for plot in _plots(root):
        view = plot.getViewBox().getViewWidget()
        where = _name(view, root)
        width = plot.size().width()
        shown = view.mapFromScene(plot.sceneBoundingRect()).boundingRect()
        if shown.right() > view.viewport().width() + 1 or shown.bottom() > view.viewport().height() + 1:
            out.append(f"{where}: the plot needs {shown.width()}x{shown.height()} px, its view shows "
                       f"{view.viewport().width()}x{view.viewport().height()}")
        if plot.titleLabel.isVisible() and plot.titleLabel.text:
            need = plot.titleLabel.item.boundingRect().width()
            if need > width + 1:
                out.append(f"{where}: title '{_title(plot)}' needs {need:.0f} px, has {width:.0f}")
        for side in ("left", "bottom", "right", "top"):
            ax = plot.getAxis(side)
            if not ax.isVisible() or not ax.label.isVisible() or not ax.labelText:
                continue
            room = ax.size().height() if side in ("left", "right") else ax.size().width()
            need = ax.label.boundingRect().width()
            if need > room + 1:
                out.append(f"{where}: axis label '{ax.label.toPlainText().strip()}' needs {need:.0f} px, has {room:.0f}")
        legend = plot.legend
        if legend is not None and legend.isVisible() and legend.items:
            room = plot.getViewBox().size().width()
            need = legend.boundingRect().width()
            if need > room + 1:
                out.append(f"{where}: legend needs {need:.0f} px, has {room:.0f}")
    return out


def problems(root: QWidget, scrolls: bool = True) -> list[str]:
    """Every check on one panel (sideways scrolling only when ``scrolls``)."""
    return (horizontal_scrolls(root) if scrolls else []) + data_outside(root) + text_cut(root)
