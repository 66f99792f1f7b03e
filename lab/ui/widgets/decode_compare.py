"""The decode beside the same model at another precision (the decoding panel's Compare tab).

A "Compare with" combo (none, the model at fp16 / bf16, the converter's ONNX files of this
model, any ONNX file) and, once a comparison is on, for the step in focus both top-5 lists
side by side (the decode's token marked, the comparison model's probability of it), the
top-1 agreement so far, the first greedy divergence and a KL-per-step chart. Draws a
``lab.core.decoding.Comparison`` (plain data, no torch); the panel sends the choice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lab.ui import theme as lab_theme
from lab.ui.widgets.prob_bars import CHOSEN, PROC, RAW, _short

#: Converter outputs offered in the combo when they exist for the loaded model.
CONVERTED = ("fp16", "int8", "int4")
PICK_FILE = "\0file"          # the combo's "ONNX file…" entry
DIFFER = (220, 60, 60)


class DecodeCompareView(QWidget):
    spec_chosen = Signal(object)      # None (no comparison), "fp16", "bf16" or a path to an .onnx file

    def __init__(self, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setToolTip("Read the same decode with the model at another precision: both distributions at "
                              "every step (the decode itself stays with the loaded model)")
        self.combo.activated.connect(self._activated)
        self._spec: Optional[str] = None
        self.error = QLabel()
        self.error.setWordWrap(True)
        lab_theme.tint(self.error, "warn")
        self.error.hide()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.step_title = QLabel()
        self.step_title.setWordWrap(True)
        self.step_title.setStyleSheet("font-weight: bold;")
        self.main_table = _top_table("loaded model")
        self.twin_table = _top_table("comparison")
        self.chart = pg.PlotWidget()
        self.chart.setBackground(None)
        plot = self.chart.getPlotItem()
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setLabel("left", "KL", units="nats")
        plot.setLabel("bottom", "generated token")
        plot.showGrid(y=True, alpha=0.2)
        plot.getAxis("left").setWidth(62)
        self.chart.setMinimumHeight(140)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lab_theme.tint(self.note, "muted")
        self.kl: list[float] = []          # the chart's values, per chosen step

        head = QHBoxLayout()
        head.addWidget(QLabel("Compare with"))
        head.addWidget(self.combo, 1)
        tables = QHBoxLayout()
        tables.addWidget(self.main_table)
        tables.addWidget(self.twin_table)
        self.body = QWidget()
        bl = QVBoxLayout(self.body)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.summary)
        bl.addWidget(self.step_title)
        bl.addLayout(tables)
        bl.addWidget(self.chart, 1)
        bl.addWidget(self.note)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(self.error)
        self.intro = QLabel("Read the same decode with the model at another precision: fp16 or bf16 "
                            "in torch, or an ONNX file the converter wrote (fp16, int8, int4). Each step then "
                            "shows both distributions, their KL divergence and where the two first disagree.")
        self.intro.setWordWrap(True)
        lab_theme.tint(self.intro, "muted")
        lay.addWidget(self.intro)
        lay.addWidget(self.body, 1)
        self.stretch = QWidget()              # keeps the combo at the top while nothing is compared
        lay.addWidget(self.stretch, 1)
        self.body.hide()
        self.set_model(None)

    # --- the choice ---------------------------------------------------------------------------
    def set_model(self, card, folder: Optional[str] = None) -> None:
        """Offer the choices for ``card`` (None: no model; encoder-only: nothing to compare); the
        converter's files of this model in ``folder``; back to "none"."""
        from lab.core.precision.twins import converted_file

        self.combo.clear()
        self.combo.addItem("none", None)
        self.combo.addItem("fp16 (torch copy)", "fp16")
        self.combo.addItem("bf16 (torch copy)", "bf16")
        for precision in CONVERTED if card is not None else ():
            path = converted_file(folder, precision, card.ref or card.name)
            if path is not None:
                self.combo.addItem(f"{precision} ONNX (converter)", str(path))
        self.combo.addItem("ONNX file…", PICK_FILE)
        self._spec = None
        self.combo.setEnabled(card is not None and card.kind != "encoder-only")
        self.combo.setToolTip(self.combo.toolTip() if self.combo.isEnabled() or card is None
                              else "A masked LM fills masks: there is no decode path to compare")
        self.show_error("")
        self.show_comparison(None, None)

    @property
    def spec(self) -> Optional[str]:
        """The comparison chosen (None: none)."""
        return self._spec

    def choose(self, spec: Optional[str]) -> None:
        """Choose ``spec`` as if picked in the combo (an .onnx path not listed is added)."""
        i = self.combo.findData(spec)
        if i < 0:
            self.combo.insertItem(self.combo.count() - 1, Path(spec).name, spec)
            i = self.combo.findData(spec)
        self.combo.setCurrentIndex(i)
        self._activated(i)

    def _activated(self, index: int) -> None:
        spec = self.combo.itemData(index)
        if spec == PICK_FILE:
            path, _ = QFileDialog.getOpenFileName(self, "ONNX file of this model", "", "ONNX files (*.onnx)")
            if not path:
                self.combo.setCurrentIndex(max(0, self.combo.findData(self._spec)))
                return
            return self.choose(path)
        self._spec = spec
        self.show_error("")
        if spec is None:
            self.show_comparison(None, None)
        self.spec_chosen.emit(spec)

    def show_error(self, message: str) -> None:
        """The comparison model could not open (the decode goes on without it)."""
        self.error.setText(message)
        self.error.setVisible(bool(message))
        if message:
            self.body.hide()
            self.intro.show()
            self.stretch.show()

    # --- the comparison ---------------------------------------------------------------------------
    def show_snapshot(self, snap) -> None:
        """The comparison a decode snapshot carries, at its step in focus (hidden for none)."""
        cmp = snap.comparison if snap.kind == "decode" and self._spec is not None else None
        focus = None
        if cmp is not None:
            focus = cmp.pending if snap.view.chosen_id is None else cmp.step(snap.view.node_id)
        chosen = next((c.token for c in snap.view.candidates if c.chosen), None) if cmp is not None else None
        self.show_comparison(cmp, focus, chosen)

    def show_comparison(self, cmp, focus, token: Optional[str] = None) -> None:
        """Draw ``cmp`` (None hides the view) with ``focus`` (a ComparedStep of it, or None) whose
        chosen token reads ``token``."""
        if cmp is None:
            self.body.hide()
            self.intro.show()
            self.stretch.show()
            self.kl = []
            self.chart.clear()
            return
        self.body.show()
        self.intro.hide()
        self.stretch.hide()
        n = len(cmp.steps)
        agree = "—" if cmp.agreement is None else f"{cmp.agreement:.0%} ({sum(s.agree for s in cmp.steps)} of {n})"
        first = ("none so far" if cmp.first_divergence is None else f"step {cmp.first_divergence}")
        skipped = f" (the oldest {cmp.skipped} steps not compared)" if cmp.skipped else ""
        self.summary.setText(f"<b>{cmp.label}</b> on {cmp.device} · top-1 agreement so far: <b>{agree}</b>"
                             f" · first greedy divergence: <b>{first}</b>{skipped}")
        self.note.setText(cmp.note)
        self.twin_table.setHorizontalHeaderLabels([cmp.label, "p"])
        self._show_step(cmp, focus, token)
        self._chart(cmp, focus)

    def _show_step(self, cmp, s, token: Optional[str]) -> None:
        if s is None:
            self.step_title.setText("No step to compare yet: step the decode.")
            for t in (self.main_table, self.twin_table):
                t.setRowCount(0)
            return
        what = "the next token (not chosen yet)" if s.token_id is None else f"step {s.step}"
        line = f"{what}: KL {s.kl:.3g} nats · top-1 {'agree' if s.agree else 'DIFFER'}"
        if s.twin_prob_of_token is not None:
            if token is None:
                token = next((t for i, t, _ in s.main_top if i == s.token_id), f"id {s.token_id}")
            line += f" · p of the decode's token {_short(token)!r} here: {s.twin_prob_of_token:.4f}"
        if s.greedy and s.twin_choice != s.token_id:
            line += " · a greedy decode of the comparison would pick another token here"
        self.step_title.setText(line)
        _fill(self.main_table, s.main_top, s.token_id)
        _fill(self.twin_table, s.twin_top, s.token_id)

    def _chart(self, cmp, focus) -> None:
        plot = self.chart.getPlotItem()
        plot.clear()
        self.kl = [s.kl for s in cmp.steps]
        if not self.kl:
            return
        x = np.array([s.step for s in cmp.steps], dtype=float)
        y = np.array(self.kl)
        brushes = [pg.mkBrush(*RAW.getRgb()[:3]) if s.agree else pg.mkBrush(*DIFFER) for s in cmp.steps]
        plot.plot(x, y, pen=pg.mkPen(RAW, width=2), symbol="o", symbolSize=6, symbolBrush=brushes)
        plot.setXRange(x[0] - 0.5, max(x[-1], x[0] + 9) + 0.5, padding=0)
        plot.setYRange(0, max(float(y.max()), 1e-9) * 1.1, padding=0)
        if cmp.first_divergence is not None:
            plot.addItem(pg.InfiniteLine(pos=cmp.first_divergence, angle=90,
                                         pen=pg.mkPen(DIFFER, width=1, style=Qt.DashLine)))
        if focus is not None and focus.token_id is not None:
            plot.addItem(pg.InfiniteLine(pos=focus.step, angle=90, pen=pg.mkPen(PROC, width=2)))


def _top_table(title: str) -> QTableWidget:
    t = QTableWidget(0, 2)
    t.setHorizontalHeaderLabels([title, "p"])
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.NoSelection)
    t.setFocusPolicy(Qt.NoFocus)
    h = t.horizontalHeader()
    h.setSectionResizeMode(0, QHeaderView.Stretch)
    h.setSectionResizeMode(1, QHeaderView.ResizeToContents)
    t.setSizeAdjustPolicy(QAbstractScrollArea.AdjustToContents)
    t.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    t.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Maximum)
    return t


def _fill(table: QTableWidget, rows, token_id) -> None:
    """One row per (id, text, p); the decode's token in bold green."""
    table.setRowCount(len(rows))
    for r, (tid, text, p) in enumerate(rows):
        cells = (QTableWidgetItem(repr(_short(text))), QTableWidgetItem(f"{p:.4f}"))
        cells[1].setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        for c, item in enumerate(cells):
            item.setData(Qt.UserRole, tid)
            if tid == token_id:
                f = item.font()
                f.setBold(True)
                item.setFont(f)
                item.setForeground(CHOSEN)
            table.setItem(r, c, item)
    table.resizeRowsToContents()
