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


def apply(app: QApplication, theme: str) -> str:
    """Apply a theme; returns the effective one (light or dark)."""
    import pyqtgraph as pg

    mode = effective(theme)
    app.setStyle("Fusion")
    pal = QPalette()
    if mode == "high-contrast":   # presenter option: white on black, yellow selection
        colors = {
            QPalette.Window: "#000000", QPalette.WindowText: "#ffffff", QPalette.Base: "#000000",
            QPalette.AlternateBase: "#1a1a1a", QPalette.ToolTipBase: "#000000", QPalette.ToolTipText: "#ffffff",
            QPalette.Text: "#ffffff", QPalette.Button: "#000000", QPalette.ButtonText: "#ffffff",
            QPalette.BrightText: "#ffff00", QPalette.Highlight: "#ffff00", QPalette.HighlightedText: "#000000",
            QPalette.Link: "#00ffff", QPalette.PlaceholderText: "#c0c0c0", QPalette.Mid: "#ffffff",
            QPalette.Dark: "#ffffff", QPalette.Light: "#ffffff",
        }
        for role, c in colors.items():
            pal.setColor(role, QColor(c))
        pal.setColor(QPalette.Disabled, QPalette.Text, QColor("#9a9a9a"))
        pal.setColor(QPalette.Disabled, QPalette.ButtonText, QColor("#9a9a9a"))
        pal.setColor(QPalette.Disabled, QPalette.WindowText, QColor("#9a9a9a"))
        pg.setConfigOptions(background="k", foreground="w")
        app.setPalette(pal)
        app.setProperty("tvlab_theme", "dark")   # panels that pick colours treat it as dark
        app.setProperty("tvlab_high_contrast", True)
        return mode
    app.setProperty("tvlab_high_contrast", False)
    if mode == "dark":
        colors = {
            QPalette.Window: "#2b2d31", QPalette.WindowText: "#e8e8e8", QPalette.Base: "#1e1f22",
            QPalette.AlternateBase: "#2b2d31", QPalette.ToolTipBase: "#1e1f22", QPalette.ToolTipText: "#e8e8e8",
            QPalette.Text: "#e8e8e8", QPalette.Button: "#3a3d42", QPalette.ButtonText: "#e8e8e8",
            QPalette.BrightText: "#ff6b6b", QPalette.Highlight: "#4c8bf5", QPalette.HighlightedText: "#ffffff",
            QPalette.Link: "#7aa7ff", QPalette.PlaceholderText: "#8a8d93",
        }
        for role, c in colors.items():
            pal.setColor(role, QColor(c))
        pal.setColor(QPalette.Disabled, QPalette.Text, QColor("#777"))
        pal.setColor(QPalette.Disabled, QPalette.ButtonText, QColor("#777"))
        pg.setConfigOptions(background="#1e1f22", foreground="#e8e8e8")
    else:
        pal = app.style().standardPalette()
        pg.setConfigOptions(background="w", foreground="k")
    app.setPalette(pal)
    app.setProperty("tvlab_theme", mode)
    return mode
