"""Presenter options for a workshop: larger fonts, the presenter layout (main views large,
side docks hidden, every text scaled), the high-contrast theme, reset everything."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QTabBar

from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme

if TYPE_CHECKING:
    from lab.ui.main_window import MainWindow

LARGE_FONT_SCALE = 1.5
HIGH_CONTRAST = "high-contrast"


def set_large_fonts(on: bool, app: Optional[QApplication] = None) -> None:
    """Scale the application font by LARGE_FONT_SCALE (a projector at the back of a room)."""
    app = app or QApplication.instance()
    base = app.property("tvlab_base_font")
    if not isinstance(base, QFont):
        base = QFont(app.font())
        app.setProperty("tvlab_base_font", base)
    old = app.font().pointSizeF()
    font = QFont(base)
    if on:
        size = base.pointSizeF() if base.pointSizeF() > 0 else 10.0
        font.setPointSizeF(size * LARGE_FONT_SCALE)
    app.setFont(font)
    lab_theme.retint()          # labels with a style sheet (notes, hints) take the new font too
    app.setProperty("tvlab_large_fonts", bool(on))
    lab_settings.settings().setValue("presenter/large_fonts", bool(on))
    new = font.pointSizeF()
    # plot titles, axis labels and ticks follow the font
    lab_theme.restyle_plots(new / old if old > 0 and new > 0 else 1.0)
    lab_theme.notifier().changed.emit(lab_theme.current())


def show_whole_tabs(window) -> None:
    """Tab labels are never cut short ("Layers & a…"): the tab bars scroll instead."""
    for bar in window.findChildren(QTabBar):
        bar.setElideMode(Qt.ElideNone)
        bar.setUsesScrollButtons(True)


def set_presenter_layout(window: "MainWindow", on: bool) -> None:
    """The presenter layout: larger fonts everywhere and the main views large (the side
    docks hidden); off goes back to the normal fonts and the layout from before."""
    set_large_fonts(on)
    window.set_presenter_layout(on)
    show_whole_tabs(window)


def presenter_layout_shown(window: "MainWindow") -> bool:
    return window.presenter_layout_shown()


def large_fonts_on() -> bool:
    """The saved choice (settings), read at start."""
    return str(lab_settings.settings().value("presenter/large_fonts", False)).lower() in ("true", "1")


def large_fonts_shown(app: Optional[QApplication] = None) -> bool:
    """Whether the application shows the larger fonts now."""
    app = app or QApplication.instance()
    return bool(app.property("tvlab_large_fonts")) if app is not None else False


def reset_everything(window: "MainWindow") -> None:
    """Back to a fresh start: settings cleared, default layout and theme, normal fonts,
    every panel's own reset (the lesson, the recent prompts), the prompt, target and
    selection cleared (the loaded model stays)."""
    from lab.ui.session import Selection

    s = lab_settings.settings()
    s.clear()
    s.sync()
    window.set_presenter_layout(False)
    set_large_fonts(False)
    window.set_theme("system")
    window.reset_layout()
    for panel in window.panels.values():
        panel.restore_defaults()
    window.session.set_target("")
    window.session.set_prompt("")
    window.session.select(**asdict(Selection()))
