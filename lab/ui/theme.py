"""Light and dark themes (Fusion palettes); "system" follows the desktop's colour scheme."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

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
    high_contrast = mode == "high-contrast"
    app.setProperty("tvlab_high_contrast", high_contrast)
    # panels that pick colours treat high contrast as dark
    app.setProperty("tvlab_theme", "dark" if high_contrast else mode)
    return mode
