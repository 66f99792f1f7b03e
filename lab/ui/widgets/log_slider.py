"""A slider over decades plus a typed value (3.14e23, 70B, 1.4T ...)."""
from __future__ import annotations

import math
from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QSlider, QWidget

from lab.ui import theme as lab_theme

SLIDER_STEPS = 100                                         # per decade


class LogSlider(QWidget):
    """Emits the value (not the log) when the slider or the typed value moves.

    ``fmt`` writes a value into the text field, ``parse`` reads it back (None when the text
    is not a positive number): the panel's number format, so both read the same."""

    valueChanged = Signal(float)

    def __init__(self, lo_exp: float, hi_exp: float, value: float, unit: str = "", *,
                 fmt: Callable[[float], str], parse: Callable[[str], Optional[float]], parent=None):
        super().__init__(parent)
        self.lo, self.hi = lo_exp, hi_exp
        self._fmt, self._parse = fmt, parse
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, int(round((hi_exp - lo_exp) * SLIDER_STEPS)))
        self.edit = QLineEdit()
        self.edit.setMaximumWidth(110)
        self.edit.setToolTip("Type a value: 3.14e23, 70B, 1.4T ...")
        self.unit = QLabel(unit)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.edit)
        lay.addWidget(self.unit)
        self._value = value
        self._quiet = False
        self.set_value(value, emit=False)
        self.slider.valueChanged.connect(self._from_slider)
        self.edit.editingFinished.connect(self._from_edit)

    def value(self) -> float:
        return self._value

    def set_value(self, v: float, emit: bool = True) -> None:
        self._value = float(v)
        self._quiet = True
        pos = (math.log10(v) - self.lo) * SLIDER_STEPS
        self.slider.setValue(int(round(min(max(pos, 0), self.slider.maximum()))))
        self.edit.setText(self._fmt(v))
        self.edit.setStyleSheet("")
        self._quiet = False
        if emit:
            self.valueChanged.emit(self._value)

    def _from_slider(self, pos: int) -> None:
        if self._quiet:
            return
        self._value = 10.0 ** (self.lo + pos / SLIDER_STEPS)
        self._quiet = True
        self.edit.setText(self._fmt(self._value))
        self._quiet = False
        self.valueChanged.emit(self._value)

    def _from_edit(self) -> None:
        v = self._parse(self.edit.text())
        if v is None:
            lab_theme.tint(self.edit, "error")
            self.edit.setToolTip(f"{self.edit.text()!r} is not a positive number")
            return
        self.set_value(v)
