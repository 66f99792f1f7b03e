"""Light and dark themes (Fusion palettes); "system" follows the desktop's colour scheme,
also when the desktop switches while the lab runs.

Every colour a view draws comes from here: ``tone(name)`` for the few semantic colours
(warnings, errors, muted notes...), ``tint(label, name)`` for a label that must follow a
theme switch, and ``apply`` restyles every plot (background, axes, titles) it finds.
"""
from __future__ import annotations

import weakref
from typing import Optional

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

THEMES = ("system", "light", "dark", "high-contrast")


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    try:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:
        return QGuiApplication.palette().color(QPalette.Window).lightness() < 128


def effective(theme: str) -> str:
    if theme == "system":
        return "dark" if system_is_dark() else "light"
    return theme if theme in THEMES else "light"


# role -> colour for the two hand-made palettes; "disabled" greys the disabled roles.
_PALETTES = {
    "high-contrast": {   # presenter option: white on black, yellow selection
        "colors": {
            QPalette.Window: "#000000", QPalette.WindowText: "#ffffff", QPalette.Base: "#000000",
            QPalette.AlternateBase: "#1a1a1a", QPalette.ToolTipBase: "#000000", QPalette.ToolTipText: "#ffffff",
            QPalette.Text: "#ffffff", QPalette.Button: "#000000", QPalette.ButtonText: "#ffffff",
            QPalette.BrightText: "#ffff00", QPalette.Highlight: "#ffff00", QPalette.HighlightedText: "#000000",
            QPalette.Link: "#00ffff", QPalette.PlaceholderText: "#c0c0c0", QPalette.Mid: "#ffffff",
            QPalette.Dark: "#ffffff", QPalette.Light: "#ffffff",
        },
        "disabled": ("#9a9a9a", (QPalette.Text, QPalette.ButtonText, QPalette.WindowText)),
        "plots": ("k", "w"),
    },
    "dark": {
        "colors": {
            QPalette.Window: "#2b2d31", QPalette.WindowText: "#e8e8e8", QPalette.Base: "#1e1f22",
            QPalette.AlternateBase: "#2b2d31", QPalette.ToolTipBase: "#1e1f22", QPalette.ToolTipText: "#e8e8e8",
            QPalette.Text: "#e8e8e8", QPalette.Button: "#3a3d42", QPalette.ButtonText: "#e8e8e8",
            QPalette.BrightText: "#ff6b6b", QPalette.Highlight: "#4c8bf5", QPalette.HighlightedText: "#ffffff",
            QPalette.Link: "#7aa7ff", QPalette.PlaceholderText: "#8a8d93",
        },
        "disabled": ("#777", (QPalette.Text, QPalette.ButtonText)),
        "plots": ("#1e1f22", "#e8e8e8"),
    },
}


def _palette(spec: dict) -> QPalette:
    pal = QPalette()
    for role, c in spec["colors"].items():
        pal.setColor(role, QColor(c))
    grey, roles = spec["disabled"]
    for role in roles:
        pal.setColor(QPalette.Disabled, role, QColor(grey))
    return pal


# Semantic colours per effective theme; dark ones are lighter so they read on #2b2d31.
_TONES = {
    "light": {"warn": "#c77700", "error": "#d03030", "good": "#2e8b57", "muted": "#666666",
              "faint": "#888888", "accent": "#e04050", "ink": "#1b1b1b", "banner_bg": "#fff3cd",
              "banner_fg": "#7a5300", "track": "#ebebeb", "edge": "#787878", "highlight": "#ffc9c9"},
    "dark": {"warn": "#f0a848", "error": "#ff7b7b", "good": "#5cc98a", "muted": "#aeb2b8",
             "faint": "#969aa1", "accent": "#ff6f80", "ink": "#e8e8e8", "banner_bg": "#4a3f1e",
             "banner_fg": "#ffe8a8", "track": "#3a3d42", "edge": "#9a9da3", "highlight": "#7a3b3b"},
    "high-contrast": {"warn": "#ffd000", "error": "#ff6060", "good": "#40ff80", "muted": "#e0e0e0",
                      "faint": "#c8c8c8", "accent": "#ff6f80", "ink": "#ffffff", "banner_bg": "#000000",
                      "banner_fg": "#ffff00", "track": "#1a1a1a", "edge": "#ffffff", "highlight": "#7a3b3b"},
}
TONE_NAMES = tuple(_TONES["light"])


def current() -> str:
    """The effective theme applied now (light, dark or high-contrast)."""
    app = QApplication.instance()
    mode = app.property("tvlab_effective_theme") if app is not None else None
    return mode if mode in _TONES else "light"


def tone(name: str) -> str:
    """A semantic colour ("warn", "error", "good", "muted", "faint", "accent", "ink",
    "banner_bg", "banner_fg", "track", "edge", "highlight") for the theme applied now."""
    return _TONES[current()][name]


def plot_colors() -> tuple[str, str]:
    """(background, foreground) of plots in the theme applied now."""
    spec = _PALETTES.get(current())
    return spec["plots"] if spec else ("#ffffff", "#000000")


class _Notifier(QObject):
    changed = Signal(str)     # the effective theme, after a switch


_notifier: Optional[_Notifier] = None
_tinted: "weakref.WeakKeyDictionary[QWidget, tuple[str, str]]" = weakref.WeakKeyDictionary()


def notifier() -> _Notifier:
    """Emits ``changed`` after every ``apply``: views that bake colours in redraw on it."""
    global _notifier
    if _notifier is None:
        _notifier = _Notifier()
    return _notifier


def tint(widget: QWidget, name: str, extra: str = "") -> None:
    """Colour a label's text with a tone, and keep it right after theme switches."""
    _tinted[widget] = (name, extra)
    widget.setStyleSheet(f"color: {tone(name)};{extra}")


def retint() -> None:
    """Re-apply every tint: after a theme switch, and after the application font changes
    (a widget with a style sheet keeps its old font until its sheet is set again)."""
    for widget, (name, extra) in list(_tinted.items()):
        try:
            widget.setStyleSheet(f"color: {tone(name)};{extra}")
        except RuntimeError:     # its C++ side is gone
            pass


def title_size(scale: float = 1.0) -> str:
    """A plot title's font size that follows the application font (presenter fonts)."""
    app = QApplication.instance()
    pt = app.font().pointSizeF() if app is not None else 9.0
    return f"{max(6.0, (pt if pt > 0 else 9.0) * scale):.1f}pt"


def small_font(scale: float = 0.85) -> QFont:
    """The application font at ``scale`` (labels inside plots), so presenter fonts grow it."""
    app = QApplication.instance()
    font = QFont(app.font()) if app is not None else QFont()
    pt = font.pointSizeF()
    font.setPointSizeF(max(6.0, (pt if pt > 0 else 9.0) * scale))
    return font


def _scaled_pt(text: str, ratio: float) -> str:
    try:
        return f"{max(6.0, float(str(text).removesuffix('pt')) * ratio):.1f}pt"
    except ValueError:
        return text


def restyle_plots(font_ratio: float = 1.0) -> None:
    """Give every live plot the theme's background and text colours and the application's
    font for axis labels and ticks; titles and texts sized in pt are scaled by
    ``font_ratio`` (the application font's change). pyqtgraph reads its config only when
    a plot is made, and fixes its fonts."""
    import pyqtgraph as pg

    app = QApplication.instance()
    if app is None:
        return
    background, foreground = plot_colors()
    font = app.font()
    pt = font.pointSizeF() if font.pointSizeF() > 0 else 9.0
    ratio = font_ratio               # titles and labels sized in pt grow with the font
    for w in app.allWidgets():
        if not isinstance(w, pg.GraphicsView):
            continue
        if w.backgroundBrush().style() != Qt.NoBrush:
            w.setBackground(background)
        scene = w.scene()
        if scene is None:
            continue
        for item in scene.items():
            if isinstance(item, pg.AxisItem):
                item.setPen(foreground)
                item.setTextPen(foreground)
                item.label.setFont(font)
                item.setStyle(tickFont=font)
            elif isinstance(item, pg.LabelItem):
                item.opts["color"] = foreground
                if ratio != 1.0:
                    item.opts["size"] = _scaled_pt(item.opts.get("size") or f"{pt / ratio:.1f}pt", ratio)
                item.setText(item.text)
            elif isinstance(item, pg.TextItem) and ratio != 1.0:
                f = QFont(item.textItem.font())
                f.setPointSizeF(max(6.0, (f.pointSizeF() if f.pointSizeF() > 0 else pt) * ratio))
                item.setFont(f)


def follow_system(app: QApplication, chosen) -> None:
    """Re-apply the "system" theme when the desktop's colour scheme changes while running;
    ``chosen()`` says the user's current choice (only "system" follows)."""
    try:
        signal = QGuiApplication.styleHints().colorSchemeChanged
    except AttributeError:      # Qt before 6.5 tells no scheme change
        return
    if app.property("tvlab_follows_system"):
        return
    app.setProperty("tvlab_follows_system", True)
    signal.connect(lambda *_: apply(app, "system") if chosen() == "system" else None)


def apply(app: QApplication, theme: str) -> str:
    """Apply a theme; returns the effective one (light, dark or high-contrast)."""
    import pyqtgraph as pg

    mode = effective(theme)
    app.setStyle("Fusion")
    spec = _PALETTES.get(mode)
    if spec is not None:
        pal = _palette(spec)
        pg.setConfigOptions(background=spec["plots"][0], foreground=spec["plots"][1])
    else:
        pal = app.style().standardPalette()
        pg.setConfigOptions(background="w", foreground="k")
    app.setPalette(pal)
    app.setProperty("tvlab_effective_theme", mode)
    high_contrast = mode == "high-contrast"
    app.setProperty("tvlab_high_contrast", high_contrast)
    # panels that pick colours treat high contrast as dark
    app.setProperty("tvlab_theme", "dark" if high_contrast else mode)
    restyle_plots()
    retint()
    notifier().changed.emit(mode)
    return mode
