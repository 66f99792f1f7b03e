"""Save a view as a picture: PNG (what is on screen) or SVG (drawn again as vectors)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QWidget


def save_view(widget: QWidget, path: str | Path, fmt: Optional[str] = None, *, title: str = "",
              paint: Optional[Callable[[QPainter], None]] = None) -> Optional[Path]:
    """Write ``widget`` to ``path`` as ``fmt`` (png or svg; default: the file's suffix, which
    is added when missing). ``paint(painter)`` draws the SVG instead of ``widget.render``
    (a view that paints itself). Returns the file, or None when it could not be written."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if path.suffix.lower() != f".{fmt}":
        path = path.with_name(path.name + f".{fmt}")
    if fmt == "png":
        ok = widget.grab().save(str(path), "PNG")
    elif fmt == "svg":
        from PySide6.QtSvg import QSvgGenerator

        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(widget.size())
        gen.setViewBox(widget.rect())
        gen.setTitle(title)
        painter = QPainter(gen)
        (paint or widget.render)(painter)
        ok = painter.end()
    else:
        raise ValueError(fmt)
    return path if ok and path.exists() else None
