"""Save a view as a picture: PNG (what is on screen) or SVG (drawn again as vectors).

A pyqtgraph view goes through lab.ui.widgets.plot_export (pyqtgraph's exporters); any other
widget is grabbed or rendered here. Files appear whole (lab.core.atomic).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QWidget

from lab.core import atomic


def save_view(widget: QWidget, path: str | Path, fmt: Optional[str] = None, *, title: str = "",
              paint: Optional[Callable[[QPainter], None]] = None) -> Optional[Path]:
    """Write ``widget`` to ``path`` as ``fmt`` (png or svg; default: the file's suffix, which
    is added when missing). ``paint(painter)`` draws the SVG instead of ``widget.render``
    (a view that paints itself). Returns the file, or None when it could not be written."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in ("png", "svg"):
        raise ValueError(fmt)
    if path.suffix.lower() != f".{fmt}":
        path = path.with_name(path.name + f".{fmt}")
    if paint is None:
        from lab.ui.widgets import plot_export

        if plot_export.is_plot(widget):
            try:
                return plot_export.export_plot(widget, path, fmt)
            except OSError:
                return None
    try:
        with atomic.replacing(path, suffix=f".{fmt}") as tmp:
            if not draw_widget(widget, tmp, fmt, title, paint):
                raise OSError(f"Qt could not write the {fmt.upper()}")
    except OSError:
        return None
    return path


def draw_widget(widget: QWidget, target: Path, fmt: str, title: str = "", paint=None) -> bool:
    """Grab (png) or render (svg) ``widget`` into ``target``; False when Qt could not write it."""
    if fmt == "png":
        return widget.grab().save(str(target), "PNG")
    from PySide6.QtSvg import QSvgGenerator

    gen = QSvgGenerator()
    gen.setFileName(str(target))
    gen.setSize(widget.size())
    gen.setViewBox(widget.rect())
    gen.setTitle(title)
    painter = QPainter(gen)
    (paint or widget.render)(painter)
    return painter.end()
