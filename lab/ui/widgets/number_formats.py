"""One number in every format: coloured bit rows, the value kept, the error; the format table.

The rounding is ``lab.core.precision.formats`` (numpy, bit for bit as torch rounds), so the
rows follow the typing on the GUI thread. The table of ranges comes from the worker
(``set_table``: it reads ``torch.finfo``).
"""
from __future__ import annotations

import math

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lab.core.errors import LabError
from lab.core.precision import formats

#: Field colours: sign, exponent, mantissa (floats) / value bits (integers).
FIELD_COLORS = {"sign": "#4f7fd8", "exponent": "#3fa34d", "mantissa": "#e08a1e", "value": "#9a6ad0"}
LABELS = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "int8 (round)", "int4": "int4 (round)",
          "int8_scaled": "int8 (scaled)", "int4_scaled": "int4 (scaled)"}
OVERFLOW_COLOR, UNDERFLOW_COLOR = "#d03030", "#c77700"
PRESET_TEXTS = ("π", "65,504", "70,000", "1e-8", "0.1")
#: The course's rounded figures beside the lab's (torch.finfo) where the course gives one.
TABLE_COLUMNS = ["Format", "Bits (s/e/m)", "Bytes", "Largest", "Smallest normal", "Smallest subnormal",
                 "Digits", "The course says"]


def value_text(v: float) -> str:
    """Enough digits to see what the format kept (3.1415927410 for π in fp32)."""
    if math.isinf(v):
        return "inf" if v > 0 else "−inf"
    if v == 0:
        return "0"
    return f"{v:.11g}" if abs(v) >= 1e-4 and abs(v) < 1e12 else f"{v:.8e}"


def fit_height(t: QTableWidget, full_width: bool = False) -> None:
    """As tall as its rows, no inner scroll bars; ``full_width``: never narrower than its
    columns (the tab scrolls instead of clipping them)."""
    t.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    # size hints, not current sizes: a table filled while hidden has a header of height 0
    t.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 6)   # one line per row
    rows = t.verticalHeader().defaultSectionSize() * t.rowCount()
    t.setFixedHeight(t.horizontalHeader().sizeHint().height() + rows + 2 * t.frameWidth() + 2)
    if full_width:    # the columns' own widths (the header's length includes the stretched last one)
        head = t.horizontalHeader()
        need = sum(max(t.sizeHintForColumn(j), head.sectionSizeHint(j)) for j in range(t.columnCount()))
        t.setMinimumWidth(need + 2 * t.frameWidth() + 2)


class BitStrip(QWidget):
    """The bits of one stored number, one cell per bit, coloured by field; 1s strong, 0s pale."""

    CELL = 12

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fields: list[tuple[str, str]] = []     # (field, bits)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)

    def set_stored(self, s: formats.Stored) -> None:
        if s.exponent:
            self.fields = [("sign", s.sign), ("exponent", s.exponent), ("mantissa", s.mantissa)]
        else:
            self.fields = [("sign", s.sign), ("value", s.mantissa)]
        self.setToolTip("  ".join(f"{name}: {bits}" for name, bits in self.fields))
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        n = sum(len(b) for _, b in self.fields)
        return QSize(max(1, n * self.CELL + 4 * (len(self.fields) - 1) + 1), self.CELL + 6)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        font = QFont(self.font())
        font.setPixelSize(self.CELL - 3)
        font.setBold(True)
        p.setFont(font)
        x = 0.0
        for name, bits in self.fields:
            base = QColor(FIELD_COLORS[name])
            for b in bits:
                rect = QRectF(x, 3, self.CELL - 1, self.CELL)
                fill = QColor(base) if b == "1" else QColor(base.red(), base.green(), base.blue(), 60)
                p.fillRect(rect, fill)
                p.setPen(QPen(QColor("#ffffff") if b == "1" else self.palette().text().color()))
                p.drawText(rect, Qt.AlignCenter, b)
                x += self.CELL
            x += 4
        p.end()


class NumberFormatsView(QWidget):
    """Type a number; see it in fp32, fp16, bf16, int8 and int4. ``changed`` after each update."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stored: dict = {}         # format -> Stored, for the number on show
        self.entry = QLineEdit("π")
        self.entry.setObjectName("formats-value")
        self.entry.setToolTip("Any number: 3.14159, -2, 65,504, 1e-8, 1e39, pi")
        self.entry.setMinimumWidth(140)
        self.entry.textChanged.connect(self.update_rows)
        self.range_edit = QLineEdit(f"{formats.DEFAULT_RANGE:g}")
        self.range_edit.setObjectName("formats-range")
        self.range_edit.setMaximumWidth(80)
        self.range_edit.setToolTip("The largest |x| the scaled int formats cover (a tensor's max |w|): "
                                   "scale = range / 127 for int8, range / 7 for int4")
        self.range_edit.textChanged.connect(self.update_rows)
        top = QHBoxLayout()
        top.addWidget(QLabel("Number"))
        top.addWidget(self.entry, 1)
        for text in PRESET_TEXTS:
            b = QPushButton(text)
            b.setObjectName(f"formats-preset-{text}")
            b.setToolTip(f"Store {text}")
            b.clicked.connect(lambda _=False, t=text: self.entry.setText(t))
            b.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Fixed)
            top.addWidget(b)
        top.addWidget(QLabel("Scaled range ±"))
        top.addWidget(self.range_edit)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(2)
        for j, head in enumerate(["Format", "Bits", "Stored value", "Abs error", "Rel error", ""]):
            h = QLabel(f"<b>{head}</b>")
            self.grid.addWidget(h, 0, j)
        self.cells: dict = {}
        for i, fmt in enumerate(formats.FORMATS, start=1):
            strip = BitStrip()
            labels = [QLabel() for _ in range(4)]
            for lab in labels:
                lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
            self.grid.addWidget(QLabel(LABELS[fmt]), i, 0)
            self.grid.addWidget(strip, i, 1)
            for j, lab in enumerate(labels):
                self.grid.addWidget(lab, i, j + 2)
            self.cells[fmt] = (strip, *labels)
        self.grid.setColumnStretch(5, 1)
        legend = QLabel("  ".join(f"<span style='background:{c}; color:white'>&nbsp;{n}&nbsp;</span>"
                                  for n, c in FIELD_COLORS.items()))
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setObjectName("formats-table")
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.note)
        lay.addLayout(self.grid)
        lay.addWidget(legend)
        lay.addWidget(self.table)
        lay.addStretch(1)
        self.update_rows()

    # --- the rows -----------------------------------------------------------------------------
    def set_value(self, value) -> None:
        self.entry.setText(str(value))

    def update_rows(self, *_) -> None:
        try:
            rng = formats.parse_value(self.range_edit.text())
            self.stored = formats.store_all(self.entry.text(), range_=rng)
        except LabError as err:
            self.note.setText(f"<span style='color:{OVERFLOW_COLOR}'>{err}</span>")
            self.changed.emit()
            return
        s32 = self.stored["fp32"]
        self.note.setText(f"Typed {s32.value:.12g}; scaled ints: scale = {rng:g}/127 (int8), "
                          f"{rng:g}/7 (int4), kept = round(x / scale) × scale.")
        for fmt, s in self.stored.items():
            strip, stored, abs_err, rel_err, flag = self.cells[fmt]
            strip.set_stored(s)
            stored.setText(value_text(s.stored))
            abs_err.setText("–" if s.abs_error is None else f"{s.abs_error:.3g}")
            rel_err.setText("–" if s.rel_error is None else "0" if s.rel_error == 0
                            else f"{s.rel_error:.2%}" if s.rel_error >= 1e-4 else f"{s.rel_error:.2e}")
            flag.setText(self._flag_text(fmt, s))
        self.changed.emit()

    @staticmethod
    def _flag_text(fmt: str, s: formats.Stored) -> str:
        if s.overflow and fmt in formats.FLOATS:
            return f"<b style='color:{OVERFLOW_COLOR}'>overflow → inf</b>"
        if s.overflow:
            return f"<b style='color:{OVERFLOW_COLOR}'>out of range: clamped to {s.code}</b>"
        if s.underflow:
            return f"<b style='color:{UNDERFLOW_COLOR}'>underflow → 0</b>"
        parts = []
        if s.subnormal:
            parts.append(f"<span style='color:{UNDERFLOW_COLOR}'>subnormal (fewer digits)</span>")
        if s.scale is not None:
            parts.append(f"code {s.code} × {s.scale:.4g}")
        return ", ".join(parts)

    # --- the table ----------------------------------------------------------------------------
    def set_table(self, rows) -> None:
        """``lab.core.precision.FormatRow``s (from the worker)."""
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            if r.exponent_bits:
                bits = f"{r.bits} (1/{r.exponent_bits}/{r.mantissa_bits})"
                largest = f"±{r.max:.8g}"
                normal, sub = f"{r.smallest_normal:.4g}", f"{r.smallest_subnormal:.4g}"
            else:
                bits = f"{r.bits} (integer)"
                largest = f"{r.min:g} … +{r.max:g}"
                normal = sub = "–"
            cells = [r.fmt, bits, f"{r.bytes:g}", largest, normal, sub, f"~{r.decimal_digits}", r.course or "–"]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment((Qt.AlignRight if 1 < j < 7 else Qt.AlignLeft) | Qt.AlignVCenter)
                if j == 7 and r.course:
                    item.setToolTip("The course rounds; the lab's figure (torch.finfo) is beside it.")
                self.table.setItem(i, j, item)
        fit_height(self.table, full_width=True)

    @property
    def has_table(self) -> bool:
        return self.table.rowCount() > 0
