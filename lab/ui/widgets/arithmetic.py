"""A "Show the arithmetic" expander: the formula with the numbers substituted."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QToolButton, QVBoxLayout, QWidget

from lab.core.errors import LabError


class Arithmetic(QWidget):
    """A toggle button over a monospace text; the text is formatted only while it is shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.button = QToolButton()
        self.button.setText("Show the arithmetic")
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.button.setArrowType(Qt.RightArrow)
        self.text = QLabel()
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.text.setFont(QFont("monospace"))
        self.text.setStyleSheet("font-family: monospace;")
        self.text.setWordWrap(True)
        self.text.hide()
        self._source = lambda: ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button)
        lay.addWidget(self.text)
        self.button.toggled.connect(self._toggle)

    def set_source(self, fn) -> None:
        """``fn()`` returns the text (it may raise a LabError, shown instead)."""
        self._source = fn
        if self.button.isChecked():
            self.refresh()

    def refresh(self) -> None:
        if self.button.isChecked():           # formatting only when someone is looking
            try:
                self.text.setText(self._source())
            except LabError as err:
                self.text.setText(str(err))

    def _toggle(self, on: bool) -> None:
        self.button.setArrowType(Qt.DownArrow if on else Qt.RightArrow)
        self.text.setVisible(on)
        self.refresh()
