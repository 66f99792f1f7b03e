"""Save any pyqtgraph view with pyqtgraph's own exporters: PNG, SVG (vectors) or CSV of the
plotted data. Files appear whole (lab.core.atomic).

The views switch pyqtgraph's context menu off (axis, range and transform controls a workshop
does not need); ``attach(view)`` gives them a short one instead: Save as PNG, SVG, CSV.
"""
from __future__ import annotations

import csv
import io
import re
import tempfile
from html import unescape
from pathlib import Path
from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from lab.core import atomic
from lab.ui.widgets.view_export import draw_widget

FORMATS = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)", "csv": "CSV of the plotted data (*.csv)"}


def is_plot(widget) -> bool:
    """True for a pyqtgraph view (PlotWidget, GraphicsLayoutWidget, ...)."""
    return isinstance(widget, pg.GraphicsView)


def _scene_item(view):
    """What the image exporters draw: a PlotWidget's plot, a layout widget's layout, or the item."""
    if isinstance(view, pg.PlotWidget):
        return view.getPlotItem()
    if isinstance(view, pg.GraphicsLayoutWidget):
        return view.ci
    if isinstance(view, pg.GraphicsView):
        return view.scene()
    return view


def plot_items(view) -> list:
    """Every PlotItem the view shows, top-left first."""
    item = _scene_item(view)
    if isinstance(item, pg.PlotItem):
        return [item]
    scene = item if isinstance(item, pg.QtWidgets.QGraphicsScene) else item.scene()
    found = [i for i in scene.items() if isinstance(i, pg.PlotItem)] if scene is not None else []
    return sorted(found, key=lambda p: (p.scenePos().y(), p.scenePos().x()))


def csv_text(view) -> str:
    """The plotted data of every plot in the view (pyqtgraph's CSVExporter; bars as x, height),
    one block per plot; "" when nothing is plotted."""
    from pyqtgraph.exporters import CSVExporter

    blocks = []
    for plot in plot_items(view):
        title = plot.titleLabel.text if plot.titleLabel is not None else ""
        parts = []
        if any(isinstance(i, pg.GraphicsItem) and i.implements("plotData") for i in plot.items):
            with tempfile.TemporaryDirectory() as scratch:   # the exporter writes only to a file
                f = Path(scratch) / "plot.csv"
                CSVExporter(plot).export(str(f))
                parts.append(f.read_text(encoding="utf-8").strip())
        for bar in (i for i in plot.items if isinstance(i, pg.BarGraphItem)):
            o = bar.opts
            x = o.get("x") if o.get("x") is not None else o.get("x0")
            h = o.get("height")
            if x is None or h is None:
                continue
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(["x", "height"])
            w.writerows(zip(list(x), list(h)))
            parts.append(out.getvalue().strip())
        if parts:
            blocks.append((f"# {_plain(title)}\n" if title else "") + "\n\n".join(parts))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _plain(text: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", text)).strip()


def export_plot(view, path, fmt: Optional[str] = None, *, width: Optional[int] = None) -> Optional[Path]:
    """Write ``view`` to ``path`` as png, svg or csv (default: the file's suffix, which is added
    when missing). Returns the file, or None when there was nothing to write (an empty CSV).
    Raises OSError when the file cannot be written."""
    from pyqtgraph import exporters

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"plots export as {', '.join(FORMATS)}, not {fmt}")
    if path.suffix.lower() != f".{fmt}":
        path = path.with_name(path.name + f".{fmt}")
    if fmt == "csv":
        text = csv_text(view)
        if not text:
            return None
        atomic.write_text(path, text)
        return path
    item = _scene_item(view)
    exporter = exporters.ImageExporter(item) if fmt == "png" else exporters.SVGExporter(item)
    if fmt == "png" and width:
        exporter.parameters()["width"] = int(width)
    with atomic.replacing(path, suffix=f".{fmt}") as tmp:
        try:
            result = exporter.export(str(tmp))
        except (ValueError, IndexError):
            # pyqtgraph 0.14's SVGExporter cannot re-parse the paths newer Qt writes
            # (https://github.com/pyqtgraph/pyqtgraph/issues/3485): Qt's own SVG generator
            # draws the same view as vectors.
            if fmt != "svg" or not isinstance(view, QWidget):
                raise
            result = draw_widget(view, tmp, "svg", "", None)
        if result is False or tmp.stat().st_size == 0:
            raise OSError(f"pyqtgraph could not draw the {fmt.upper()}")
    return path


def save_dialog(view, fmt: str, parent: Optional[QWidget] = None, name: str = "plot") -> Optional[Path]:
    """Ask for a file and export ``view`` there; a failure is shown as one message."""
    from PySide6.QtWidgets import QMessageBox

    path, _ = QFileDialog.getSaveFileName(parent or view, f"Save as {fmt.upper()}", f"{name}.{fmt}", FORMATS[fmt])
    if not path:
        return None
    try:
        saved = export_plot(view, path, fmt)
    except OSError as err:
        QMessageBox.warning(parent or view, "Save", f"Could not write {path}: {err.strerror or err}.")
        return None
    if saved is None:
        QMessageBox.information(parent or view, "Save", "This view has no plotted data to save as CSV yet.")
    return saved


def export_menu(view, parent: Optional[QWidget] = None, name: str = "plot") -> QMenu:
    menu = QMenu(parent or view)
    for fmt in FORMATS:
        label = "Save data as CSV…" if fmt == "csv" else f"Save as {fmt.upper()}…"
        menu.addAction(label, lambda f=fmt: save_dialog(view, f, parent, name))
    return menu


def attach(view, name: str = "plot") -> None:
    """Give a pyqtgraph view a right-click menu that saves it (PNG, SVG, CSV)."""
    view.setContextMenuPolicy(Qt.CustomContextMenu)
    view.customContextMenuRequested.connect(
        lambda pos: export_menu(view, name=name).exec(view.mapToGlobal(pos)))
