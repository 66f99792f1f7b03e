"""A weight tensor's histogram with the int8 / int4 grid, the error each format makes on it,
and the same prompt at each precision side by side.

Plain values in (``TensorStats``, ``NextTokenComparison`` from the worker), views out;
requests go out as signals (``tensor_chosen``, ``compare_clicked``) for the panel to send.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lab.ui.widgets.number_formats import fit_height

GRID_COLORS = {"int8": "#dd8452", "int4": "#c44e52"}
ERROR_COLUMNS = ["Format", "Max |Δ|", "Mean |Δ|", "Relative", "→ 0", "→ inf"]
ERROR_TIPS = ["", "Largest absolute change of one weight", "Mean absolute change",
              "Mean |Δ| / mean |w|", "Non-zero weights that became 0", "Weights that overflowed to inf"]


def _table(columns, object_name: str) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setObjectName(object_name)
    t.setHorizontalHeaderLabels(columns)
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.NoSelection)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    t.setWordWrap(False)
    t.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return t


def _item(text: str, align=Qt.AlignRight) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(align | Qt.AlignVCenter)
    return item


class WeightHistogram(QWidget):
    """Pick a tensor: its histogram, the int8 / int4 levels over it, each format's error."""

    tensor_chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stats = None
        self.picker = QComboBox()
        self.picker.setObjectName("list-tensor")
        self.picker.setToolTip("A weight tensor of the loaded model")
        self.picker.setMinimumContentsLength(24)
        self.picker.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.picker.activated.connect(lambda _i: self.tensor_chosen.emit(self.picker.currentData() or ""))
        self.grid_choice = QComboBox()
        self.grid_choice.setObjectName("formats-grid")
        self.grid_choice.addItems(["int4 grid", "int8 grid", "no grid"])
        self.grid_choice.setToolTip("The values symmetric per-tensor quantization can keep (k × scale)")
        self.grid_choice.currentIndexChanged.connect(self.redraw)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(190)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setLabel("bottom", "weight value")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setLabel("left", "count")
        self.info = QLabel("Load a model to see its weights.")
        self.info.setWordWrap(True)
        self.info.setMinimumHeight(3 * self.info.fontMetrics().lineSpacing() + 4)   # wraps to 3 lines
        self.info.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.errors = _table(ERROR_COLUMNS, "formats-errors")
        for j, tip in enumerate(ERROR_TIPS):
            if tip:
                self.errors.horizontalHeaderItem(j).setToolTip(tip)
        row = QHBoxLayout()
        row.addWidget(QLabel("Tensor"))
        row.addWidget(self.picker, 1)
        row.addWidget(self.grid_choice)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.info)
        lay.addWidget(self.errors)
        fit_height(self.errors)

    def set_tensors(self, infos, chosen: str) -> None:
        self.picker.clear()
        for t in infos:
            self.picker.addItem(f"{t.name}  {'×'.join(map(str, t.shape))}", t.name)
        i = self.picker.findData(chosen)
        self.picker.setCurrentIndex(max(i, 0))

    def clear(self) -> None:
        self.picker.clear()
        self.stats = None
        self.errors.setRowCount(0)
        self.info.setText("Load a model to see its weights.")
        self.redraw()

    def set_stats(self, stats) -> None:
        self.stats = stats
        i = self.picker.findData(stats.name)
        if i >= 0:
            self.picker.setCurrentIndex(i)
        self.info.setText(
            f"{escape(stats.name)}: {stats.numel:,} values ({stats.dtype}), min {stats.min:.4g}, max {stats.max:.4g}, "
            f"std {stats.std:.3g}. Per-tensor symmetric: int8 scale = {stats.absmax:.4g}/127 = "
            f"{stats.scales['int8']:.3g}, int4 scale = {stats.absmax:.4g}/7 = {stats.scales['int4']:.3g}.")
        self.errors.setRowCount(len(stats.errors))
        for i, (fmt, e) in enumerate(stats.errors.items()):
            cells = [fmt, f"{e['max']:.3g}", f"{e['mean']:.3g}", f"{e['relative']:.2%}",
                     f"{e['zeroed']:,}", f"{e['overflow']:,}"]
            for j, text in enumerate(cells):
                item = _item(text, Qt.AlignLeft if j == 0 else Qt.AlignRight)
                if j == 5 and e["overflow"]:
                    item.setForeground(Qt.red)
                self.errors.setItem(i, j, item)
        fit_height(self.errors)
        self.redraw()

    def redraw(self, *_) -> None:
        self.plot.clear()
        st = self.stats
        if st is None:
            self.plot.setTitle("Choose a tensor")
            return
        self.plot.setTitle(None)
        centers = (st.edges[:-1] + st.edges[1:]) / 2
        width = float(st.edges[1] - st.edges[0])
        self.plot.addItem(pg.BarGraphItem(x=centers, height=st.counts.astype(float), width=width,
                                          brush=pg.mkBrush("#4c72b0"), pen=pg.mkPen(None)))
        choice = self.grid_choice.currentText().split()[0]
        if choice in GRID_COLORS:
            levels = st.grid(choice)
            top = float(st.counts.max()) if st.counts.size else 1.0
            x = np.repeat(levels, 2)
            y = np.tile([0.0, top * 1.05], len(levels))
            self.plot.addItem(pg.PlotDataItem(x, y, connect="pairs",
                                              pen=pg.mkPen(GRID_COLORS[choice], width=1, style=Qt.DashLine)))
        self.plot.setXRange(float(st.edges[0]), float(st.edges[-1]), padding=0.03)


COMPARE_COLUMNS = ["Precision", "#1", "#2", "#3", "#4", "#5", "Top-1 same", "Agree (all pos.)", "KL (nats)",
                   "P(fp32's #1)"]
COMPARE_TIPS = ["", "", "", "", "", "", "Is the most likely next token the same as torch fp32's?",
                "Fraction of all prompt positions whose top token equals fp32's",
                "KL(fp32 || this) of the next-token distribution at the shown position",
                "This precision's probability of fp32's most likely token"]


class PrecisionCompare(QWidget):
    """The prompt's next-token top-5 at each precision, one row per precision."""

    compare_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result = None
        self.button = QPushButton("Compare precisions")
        self.button.setObjectName("formats-compare")
        self.button.setToolTip("Run the prompt through the model at fp32, fp16, bf16 (torch copies) "
                               "and int8 (the converter's ONNX file, when there is one)")
        self.button.clicked.connect(self.compare_clicked)
        self.status = QLabel("Runs the prompt at each precision: next-token top-5, top-1 agreement and KL.")
        self.status.setWordWrap(True)
        self.table = _table(COMPARE_COLUMNS, "formats-compare-table")
        self.table.horizontalHeader().setStretchLastSection(False)
        for j in range(1, 6):
            self.table.horizontalHeader().setSectionResizeMode(j, QHeaderView.Stretch)
        for j, tip in enumerate(COMPARE_TIPS):
            if tip:
                self.table.horizontalHeaderItem(j).setToolTip(tip)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.table)
        lay.addStretch(1)
        fit_height(self.table)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #d03030;" if error else "")
        self.status.setText(text)

    def clear(self) -> None:
        self.result = None
        self.table.setRowCount(0)
        fit_height(self.table)
        self.set_status("Runs the prompt at each precision: next-token top-5, top-1 agreement and KL.")

    def set_result(self, cmp, int8_note: str = "") -> None:
        self.result = cmp
        self.table.clearSpans()
        self.table.setRowCount(len(cmp.rows))
        for i, r in enumerate(cmp.rows):
            if r.error:
                cells = [r.label, r.error] + [""] * (len(COMPARE_COLUMNS) - 2)
            else:
                tops = [f"{c.text} {c.prob:.4f}" for c in r.top] + [""] * (5 - len(r.top))
                cells = [r.label, *tops, "yes" if r.top1_agrees else "NO", f"{r.agreement:.0%}",
                         f"{r.kl:.2e}", f"{r.ref_top1_prob:.4f}"]
            for j, text in enumerate(cells):
                item = _item(text, Qt.AlignLeft if j < 6 else Qt.AlignRight)
                if r.note:
                    item.setToolTip(r.note)
                if j == 6 and r.top1_agrees is False:
                    item.setForeground(Qt.red)
                self.table.setItem(i, j, item)
            if r.error:
                self.table.setSpan(i, 1, 1, len(COMPARE_COLUMNS) - 1)
        fit_height(self.table)
        where = ("The prediction at the first [MASK] (or the last word) of" if cmp.kind == "encoder-only"
                 else "The next token after")
        self.set_status(f"{where}: “{escape(cmp.context[-80:])}”. "
                        + (int8_note or ""))
