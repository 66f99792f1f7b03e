"""Scaling laws panel: play with Kaplan / Chinchilla / Epoch laws, place real models, fit your runs.

All numbers come from ``lab.core.scaling`` (the same functions ``tvlab scaling`` prints).
Plots are log-log. Slider drags only move the highlighted curve and markers (the law's
curves are rebuilt only when the law changes), so a drag costs well under one frame.
"""
from __future__ import annotations

import math
import sys
import traceback
from html import escape
from pathlib import Path
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QProgressBar, QPushButton,
                               QScrollArea, QSizePolicy, QSlider, QSpinBox, QSplitter, QTabWidget, QToolButton,
                               QVBoxLayout, QWidget)

from lab.core import scaling as sc
from lab.core.errors import LabError
from lab.core.jobs import Job
from lab.core.units import format_number, number_or_none
from lab.ui.panels.base import Panel

LAW_COLORS = {"kaplan": "#d1495b", "chinchilla-1": "#edae49", "chinchilla-3": "#00798c",
              "epoch": "#6a4c93", "fit": "#2e8b57"}
ISO_BUDGETS = [10.0 ** e for e in range(18, 27)]          # FLOPs, one iso-FLOP curve per decade
C_RANGE = (18.0, 27.0)                                     # log10 FLOPs on the compute slider
N_RANGE = (6.0, 13.0)                                      # log10 parameters
D_RANGE = (7.0, 14.0)                                      # log10 tokens
SLIDER_STEPS = 100                                         # per decade


_fmt = format_number
_parse = number_or_none


class LogSlider(QWidget):
    """A slider over decades plus a typed value; emits the value (not the log) when either moves."""

    valueChanged = Signal(float)

    def __init__(self, lo_exp: float, hi_exp: float, value: float, unit: str = "", parent=None):
        super().__init__(parent)
        self.lo, self.hi = lo_exp, hi_exp
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
        self.edit.setText(_fmt(v))
        self.edit.setStyleSheet("")
        self._quiet = False
        if emit:
            self.valueChanged.emit(self._value)

    def _from_slider(self, pos: int) -> None:
        if self._quiet:
            return
        self._value = 10.0 ** (self.lo + pos / SLIDER_STEPS)
        self._quiet = True
        self.edit.setText(_fmt(self._value))
        self._quiet = False
        self.valueChanged.emit(self._value)

    def _from_edit(self) -> None:
        v = _parse(self.edit.text())
        if v is None:
            self.edit.setStyleSheet("color: #d03030;")
            self.edit.setToolTip(f"{self.edit.text()!r} is not a positive number")
            return
        self.set_value(v)


class Arithmetic(QWidget):
    """A "Show the arithmetic" expander: the formula with the numbers substituted."""

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


class _FitSignals(QObject):
    """Results of a background fit, delivered on the GUI thread. No bool arguments: PySide6
    6.12 on Python 3.11 loses a reference to True/False each time a bool goes through a
    Python-defined signal, which ends in a crash at exit."""

    progress = Signal(int, float, str)     # fit id, fraction, stage
    done = Signal(int, object)             # fit id, Fit
    failed = Signal(int, str)              # fit id, message for the user


class _FitRunnable(QRunnable):
    def __init__(self, fit_id: int, runs, bootstrap: int, job: Job, signals: _FitSignals):
        super().__init__()
        self.fit_id, self.runs, self.bootstrap, self.job, self.signals = fit_id, runs, bootstrap, job, signals

    def run(self) -> None:
        try:
            fit = sc.fit_runs(self.runs, bootstrap=self.bootstrap, job=self.job)
        except LabError as err:             # Cancelled is a LabError too
            self.signals.failed.emit(self.fit_id, str(err))
        except Exception as err:  # a bug: say so, keep the panel alive
            traceback.print_exc(file=sys.stderr)
            self.signals.failed.emit(self.fit_id, f"Internal error while fitting: {type(err).__name__}: {err}")
        else:
            self.signals.done.emit(self.fit_id, fit)


class Marker:
    """"Your model" on a log-log plot: a TargetItem moved with setPos (a PlotDataItem's setData
    of one point costs ~1-3 ms; moving a TargetItem costs ~0.1 ms)."""

    def __init__(self, plot: pg.PlotWidget, color: str = "#e04050", hollow: bool = False):
        self.item = pg.TargetItem(pos=(0, 0), size=11, symbol="o", movable=False,
                                  pen=pg.mkPen("k" if hollow else color, width=2),
                                  brush=None if hollow else pg.mkBrush(color))
        self.item.setZValue(20)
        self.item.hide()
        plot.addItem(self.item, ignoreBounds=True)
        self.x = self.y = None

    def set(self, x: Optional[float], y: Optional[float]) -> None:
        self.x, self.y = x, y
        if x is None or y is None or not (x > 0 and y > 0):
            self.item.hide()
            return
        self.item.setPos(math.log10(x), math.log10(y))
        self.item.show()


class SparseLogAxis(pg.AxisItem):
    """A log axis that labels decades and 2x, 5x only (pyqtgraph labels every minor tick on
    short ranges, and the labels run into each other)."""

    def logTickStrings(self, values, scale, spacing):
        strings = super().logTickStrings(values, scale, spacing)
        keep = []
        for v, text in zip(values, strings):
            m = 10 ** (v - math.floor(v + 1e-9))
            keep.append(text if min(abs(m - k) for k in (1, 2, 5)) < 1e-6 else "")
        return keep


def _log_plot(title: str, x: str, y: str, sparse: bool = False) -> pg.PlotWidget:
    w = pg.PlotWidget(axisItems={"bottom": SparseLogAxis("bottom"), "left": SparseLogAxis("left")}
                      if sparse else None)
    p = w.getPlotItem()
    p.setTitle(title, size="10pt")
    w.setToolTip(title)
    p.setLabel("bottom", x)
    p.setLabel("left", y)
    p.setLogMode(True, True)
    p.showGrid(True, True, alpha=0.2)
    p.addLegend(offset=(-5, 5), labelTextSize="8pt")
    for ax in ("bottom", "left"):
        p.getAxis(ax).enableAutoSIPrefix(False)     # log axes read 1e9, not 0.001 x1e+12
    # Long titles must not set the plot's minimum width: plots side by side share the space.
    w.setMinimumSize(160, 160)
    w.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)
    return w


class ScalingPanel(Panel):
    panel_id = "scaling"
    title = "Scaling laws"
    area = "right"
    tab_with = "attention"
    order = 80

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.law_key = "chinchilla-1"
        self.fit: Optional[sc.Fit] = None
        self.runs: Optional[sc.Runs] = None
        self.runs_error = ""
        self.fit_running = False
        try:
            self.known = sc.load_known_models()
        except LabError:
            self.known = []
        self._dirty: set = set()
        self._fit_id = 0
        self._fit_job: Optional[Job] = None
        self._fit_signals = _FitSignals(self)
        self._fit_signals.progress.connect(self._fit_progress)
        self._fit_signals.done.connect(self._on_fit_done)
        self._fit_signals.failed.connect(self._on_fit_failed)
        self._build_controls()
        self._build_plots()
        self.tabs.currentChanged.connect(self._draw_markers)
        self.tabs.currentChanged.connect(self._runs_tab_shown)
        split = QSplitter(Qt.Horizontal)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.controls)
        scroll.setMinimumWidth(330)
        split.addWidget(scroll)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.units_label)
        rl.addWidget(self.tabs, 1)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)

        self._rebuild_law()
        self._load_sweep()

    def sizeHint(self) -> QSize:
        return QSize(960, 620)          # three plots side by side would otherwise ask for 2,300 px

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        self.controls = QWidget()
        v = QVBoxLayout(self.controls)

        # the law
        g = QGroupBox("Law")
        gl = QVBoxLayout(g)
        self.law = QComboBox()
        for key in sc.LAW_KEYS:
            self.law.addItem(sc.LAWS[key].name, key)
        self.law.setCurrentIndex(sc.LAW_KEYS.index(self.law_key))
        self.law.currentIndexChanged.connect(self._law_changed)
        self.overlay = QCheckBox("Draw every law (mixed units are flagged)")
        self.overlay.toggled.connect(lambda _: self._rebuild_law())
        self.law_info = QLabel()
        self.law_info.setWordWrap(True)
        self.law_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        gl.addWidget(self.law)
        gl.addWidget(self.overlay)
        gl.addWidget(self.law_info)
        v.addWidget(g)

        # compute budget -> optimum
        g = QGroupBox("Compute budget → compute-optimal model")
        f = QFormLayout(g)
        self.budget_mode = QComboBox()
        self.budget_mode.addItems(["FLOPs", "PF-days", "GPUs × days"])
        self.budget_mode.currentIndexChanged.connect(self._budget_mode_changed)
        f.addRow("Budget in", self.budget_mode)
        self.compute = LogSlider(*C_RANGE, 5.76e23, "FLOPs")
        self.compute.valueChanged.connect(self._compute_changed)
        f.addRow("Compute", self.compute)
        self.pf_days = LogSlider(C_RANGE[0] - math.log10(sc.FLOPS_PER_PF_DAY),
                                 C_RANGE[1] - math.log10(sc.FLOPS_PER_PF_DAY),
                                 5.76e23 / sc.FLOPS_PER_PF_DAY, "PF-days")
        self.pf_days.valueChanged.connect(lambda pf: self.compute.set_value(pf * sc.FLOPS_PER_PF_DAY))
        f.addRow("PF-days", self.pf_days)
        self.gpu = QComboBox()
        self.gpu.addItems(list(sc.GPU_PEAK_FLOPS))
        self.gpu.setCurrentText("A100")
        self.gpu.setToolTip(sc.GPU_SOURCE)
        self.gpu_count = QSpinBox()
        self.gpu_count.setRange(1, 1_000_000)
        self.gpu_count.setValue(1024)
        self.gpu_days = QDoubleSpinBox()
        self.gpu_days.setRange(0.01, 10_000)
        self.gpu_days.setValue(30)
        self.mfu = QDoubleSpinBox()
        self.mfu.setRange(0.01, 1.0)
        self.mfu.setSingleStep(0.05)
        self.mfu.setValue(sc.DEFAULT_MFU)
        self.mfu.setToolTip("Model FLOPs utilisation: real runs reach 30-50% of peak; 40% is a fair default.")
        self.gpu_row = QWidget()
        gr = QHBoxLayout(self.gpu_row)
        gr.setContentsMargins(0, 0, 0, 0)
        for w, lab in ((self.gpu, ""), (self.gpu_count, "×"), (self.gpu_days, "days, MFU"), (self.mfu, "")):
            if lab:
                gr.addWidget(QLabel(lab))
            gr.addWidget(w)
        f.addRow("GPUs", self.gpu_row)
        for w in (self.gpu, self.gpu_count, self.gpu_days, self.mfu):
            sig = w.currentIndexChanged if isinstance(w, QComboBox) else w.valueChanged
            sig.connect(self._gpu_changed)
        self.optimum = QLabel()
        self.optimum.setWordWrap(True)
        self.optimum.setTextInteractionFlags(Qt.TextSelectableByMouse)
        f.addRow(self.optimum)
        self.use_optimum = QPushButton("Use this model below")
        self.use_optimum.clicked.connect(self._use_optimum)
        f.addRow(self.use_optimum)
        self.optimum_math = Arithmetic()
        f.addRow(self.optimum_math)
        v.addWidget(g)
        self._budget_mode_changed(0)

        # N, D -> compute and verdict
        g = QGroupBox("Parameters and tokens → compute, verdict")
        f = QFormLayout(g)
        self.params = LogSlider(*N_RANGE, 70e9, "params")
        self.tokens = LogSlider(*D_RANGE, 1.4e12, "tokens")
        self.params.valueChanged.connect(lambda _: self._point_changed())
        self.tokens.valueChanged.connect(lambda _: self._point_changed())
        f.addRow("N", self.params)
        f.addRow("D", self.tokens)
        self.preset = QComboBox()
        self.preset.addItem("Known model…", None)
        for m in self.known:
            if math.isfinite(m.tokens):
                self.preset.addItem(m.name, m.name)
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        f.addRow("Preset", self.preset)
        self.point_info = QLabel()
        self.point_info.setWordWrap(True)
        self.point_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        f.addRow(self.point_info)
        self.point_math = Arithmetic()
        f.addRow(self.point_math)
        v.addWidget(g)

        # your runs
        g = QGroupBox("Fit your own runs")
        gl = QVBoxLayout(g)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import CSV…")
        self.import_button.setToolTip("Columns: params (or parameters), tokens, loss (or val_loss); compute optional")
        self.import_button.clicked.connect(self.choose_csv)
        self.sweep_button = QPushButton("Fit the lab's sweep")
        self.sweep_button.clicked.connect(self.fit_sweep)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_fit)
        self.cancel_button.setEnabled(False)
        row.addWidget(self.import_button)
        row.addWidget(self.sweep_button)
        row.addWidget(self.cancel_button)
        gl.addLayout(row)
        self.fit_progress = QProgressBar()
        self.fit_progress.setRange(0, 100)
        self.fit_progress.hide()
        gl.addWidget(self.fit_progress)
        self.fit_info = QLabel("No runs loaded.")
        self.fit_info.setWordWrap(True)
        self.fit_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        gl.addWidget(self.fit_info)
        self.extrapolation = QLabel()
        self.extrapolation.setWordWrap(True)
        self.extrapolation.setStyleSheet("color: #c77700;")
        self.extrapolation.hide()
        gl.addWidget(self.extrapolation)
        self.bad_rows = QListWidget()
        self.bad_rows.setMaximumHeight(90)
        self.bad_rows.hide()
        gl.addWidget(self.bad_rows)
        v.addWidget(g)
        v.addStretch(1)

        self.units_label = QLabel()
        self.units_label.setWordWrap(True)
        self.units_label.setStyleSheet("color: #c77700; font-weight: bold;")
        self.units_label.hide()

    # ------------------------------------------------------------------ plots
    def _build_plots(self) -> None:
        self.tabs = QTabWidget()
        # loss vs N, D, C
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        self.plot_n = _log_plot("L(N), unlimited data", "parameters N", "loss (nats)")
        self.plot_d = _log_plot("L(D), unlimited model", "tokens D", "loss (nats)")
        self.plot_c = _log_plot("L(C), optimal allocation", "compute C (FLOPs)", "loss (nats)")
        for p in (self.plot_n, self.plot_d, self.plot_c):
            h.addWidget(p)
        self.tabs.addTab(w, "Loss vs N, D, C")
        # iso-FLOP
        self.plot_iso = _log_plot("Iso-FLOP curves: loss vs N at fixed compute (★ = the law's optimum)",
                                  "parameters N", "loss (nats)")
        self.tabs.addTab(self.plot_iso, "Iso-FLOP")
        # frontier
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        self.plot_fn = _log_plot("Compute-optimal parameters", "compute C (FLOPs)", "parameters N")
        self.plot_fd = _log_plot("Compute-optimal tokens", "compute C (FLOPs)", "tokens D")
        h.addWidget(self.plot_fn)
        h.addWidget(self.plot_fd)
        self.tabs.addTab(w, "Frontier && known models")
        # runs
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        self.plot_runs = _log_plot("Your runs and the fitted law", "parameters N", "loss (nats)", sparse=True)
        self.plot_resid = pg.PlotWidget()
        rp = self.plot_resid.getPlotItem()
        rp.setTitle("Residuals: log(observed) − log(fitted)")
        rp.setLabel("bottom", "compute C (FLOPs)")
        rp.setLabel("left", "log residual")
        rp.setLogMode(True, False)
        rp.getAxis("bottom").enableAutoSIPrefix(False)
        rp.showGrid(True, True, alpha=0.2)
        rp.addLine(y=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        h.addWidget(self.plot_runs, 3)
        h.addWidget(self.plot_resid, 2)
        self.tabs.addTab(w, "Your runs")

        # markers that move with the sliders (created once)
        pen = pg.mkPen("#e04050", width=2)
        self.iso_current = self.plot_iso.plot([], [], pen=pg.mkPen("#e04050", width=3), name="your budget")
        self.iso_current_opt = self.plot_iso.plot([], [], pen=None, symbol="star", symbolSize=18,
                                                  symbolBrush="#e04050")
        self.iso_point = Marker(self.plot_iso, "#e04050", hollow=True)
        self.c_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#e04050", style=Qt.DashLine))
        self.plot_c.addItem(self.c_line, ignoreBounds=True)
        self.fn_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#e04050", style=Qt.DashLine))
        self.fd_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#e04050", style=Qt.DashLine))
        self.plot_fn.addItem(self.fn_line, ignoreBounds=True)
        self.plot_fd.addItem(self.fd_line, ignoreBounds=True)
        self.n_point = Marker(self.plot_n)
        self.d_point = Marker(self.plot_d)
        self.c_point = Marker(self.plot_c)
        self.fn_point = Marker(self.plot_fn)
        self.fd_point = Marker(self.plot_fd)
        self.runs_point = Marker(self.plot_runs)
        self._law_items: list = []
        self._known_items()

    def _known_items(self) -> None:
        """Known models on the frontier plots: filled = compute reported, hollow = estimated (6ND)."""
        rep = [m for m in self.known if m.compute_kind == "reported"]
        est = [m for m in self.known if m.compute_kind == "estimated"]
        for plot, attr in ((self.plot_fn, "params"), (self.plot_fd, "tokens")):
            for group, name, brush in ((rep, "known: compute reported", "#333"),
                                       (est, "known: compute estimated (6ND)", None)):
                if not group:
                    continue
                plot.plot([m.compute_flops for m in group], [getattr(m, attr) for m in group], pen=None,
                          symbol="d", symbolSize=9, symbolBrush=brush, symbolPen=pg.mkPen("#333"), name=name)
            for m in rep + est:
                t = pg.TextItem(m.name, color="#555", anchor=(0, 1))
                t.setFont(QFont("sans", 7))
                t.setPos(math.log10(m.compute_flops), math.log10(getattr(m, attr)))
                t.setToolTip(f"{m.name}: N {_fmt(m.params)} ({m.params_kind}; {m.params_source})\n"
                             f"D {_fmt(m.tokens)} ({m.tokens_kind}; {m.tokens_source})\n"
                             f"C {_fmt(m.compute_flops)} ({m.compute_kind}; {m.compute_source})")
                plot.addItem(t)
        self.known_plotted = len(rep) + len(est)

    # ------------------------------------------------------------------ law curves
    def _laws_shown(self) -> list:
        keys = list(sc.LAW_KEYS) if self.overlay.isChecked() else [self.law_key]
        return [sc.get_law(k) for k in keys]

    def _law_changed(self, _index: int) -> None:
        self.law_key = self.law.currentData()
        self._rebuild_law()

    def _rebuild_law(self) -> None:
        law = sc.get_law(self.law_key)
        self.law_info.setText(
            f"<b>{escape(law.name)}</b><br>{escape(law.constants_text())}<br>"
            f"<i>Units:</i> {escape(law.units)}<br><i>Source:</i> {escape(law.source)}"
            + (f"<br><i>Note:</i> {escape(law.notes)}" if law.notes else ""))
        for plot, item in self._law_items:
            plot.removeItem(item)
        self._law_items = []
        laws = self._laws_shown()
        note = sc.units_note(laws)
        self.units_label.setText(note)
        self.units_label.setVisible(bool(note))
        N = np.logspace(*N_RANGE, 200)
        D = np.logspace(*D_RANGE, 200)
        C = np.logspace(*C_RANGE, 200)

        def add(plot, x, y, **kw):
            self._law_items.append((plot, plot.plot(x, y, **kw)))

        for law in laws:
            color = LAW_COLORS.get(law.key, "#444")
            width = 3 if law.key == self.law_key else 1.5
            pen = pg.mkPen(color, width=width)
            if law.kind == "ratio" and len(laws) > 1:
                pass   # same loss curves as approach 3: drawn once, under chinchilla-3
            else:
                add(self.plot_n, N, sc.loss_vs_params(law, N), pen=pen, name=law.name)
                add(self.plot_d, D, sc.loss_vs_tokens(law, D), pen=pen, name=law.name)
            add(self.plot_c, C, sc.loss_vs_compute(law, C), pen=pen, name=law.name)
            fr = sc.frontier(law, C)
            add(self.plot_fn, C, fr["params"], pen=pen, name=law.name)
            add(self.plot_fd, C, fr["tokens"], pen=pen, name=law.name)
        # iso-FLOP family for the chosen law
        law = sc.get_law(self.law_key)
        color = pg.mkColor(LAW_COLORS.get(law.key, "#444"))
        opt_n, opt_l = [], []
        for i, Cb in enumerate(ISO_BUDGETS):
            cur = sc.iso_flop_curve(law, Cb, n=81, span=300.0)
            c = pg.mkColor(color)
            c.setAlphaF(0.35 + 0.6 * i / len(ISO_BUDGETS))
            add(self.plot_iso, cur["params"], cur["loss"], pen=pg.mkPen(c, width=1.5),
                name="1e{:d} .. 1e{:d} FLOPs".format(18, 26) if i == 0 else None)
            opt_n.append(cur["opt_params"])
            opt_l.append(cur["opt_loss"])
        add(self.plot_iso, opt_n, opt_l, pen=pg.mkPen(color, width=1, style=Qt.DotLine), symbol="star",
            symbolSize=12, symbolBrush=color, name=f"{law.name} optimum")
        self._update_compute()
        self._point_changed()

    # ------------------------------------------------------------------ compute budget
    def _budget_mode_changed(self, index: int) -> None:
        self.compute.setEnabled(index == 0)
        self.pf_days.setEnabled(index == 1)
        self.gpu_row.setEnabled(index == 2)
        if index == 2:
            self._gpu_changed()

    def _gpu_changed(self, *_):
        if self.budget_mode.currentIndex() != 2:
            self._point_changed()       # GPU-days readout depends on the GPU and MFU
            return
        try:
            C = sc.gpu_flops(self.gpu.currentText(), self.gpu_count.value(), self.gpu_days.value(),
                             self.mfu.value())
        except LabError as err:
            self.optimum.setText(escape(str(err)))
            return
        self.compute.set_value(C)

    def _compute_changed(self, C: float) -> None:
        self.pf_days.set_value(C / sc.FLOPS_PER_PF_DAY, emit=False)
        self._update_compute()          # the N, D readout does not depend on the budget

    def _update_compute(self) -> None:
        law = sc.get_law(self.law_key)
        C = self.compute.value()
        a = sc.optimal(law, C)
        gd = sc.gpu_days(C, self.gpu.currentText(), self.mfu.value())
        budget = ""
        if self.budget_mode.currentIndex() == 2:
            budget = f"<br>{escape(sc.arithmetic_gpu(self.gpu.currentText(), self.gpu_count.value(), self.gpu_days.value(), self.mfu.value()))}"
        self.optimum.setText(
            f"C = {_fmt(C)} FLOPs = {_fmt(a.pf_days)} PF-days ≈ {_fmt(gd)} {self.gpu.currentText()}-days "
            f"at {self.mfu.value():.0%} MFU{budget}<br>"
            f"<b>N<sub>opt</sub> = {_fmt(a.params)}</b> parameters, <b>D<sub>opt</sub> = {_fmt(a.tokens)}</b> tokens "
            f"({a.tokens_per_param:,.1f} tokens/param)<br>predicted loss {a.loss:.3f} nats "
            f"<span style='color:#888'>({escape(law.name)})</span>")
        self.optimum_math.set_source(lambda: sc.arithmetic_optimal(law, C))
        self._last_optimum = a
        self._dirty |= {"budget"}
        self._draw_markers()

    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.scaling``: ``law`` (a key of lab.core.scaling.LAWS),
        ``params`` and ``tokens`` (the N, D point), ``view`` (loss, isoflop, frontier, runs)."""
        if settings.get("law") in sc.LAW_KEYS:
            self.law.setCurrentIndex(sc.LAW_KEYS.index(settings["law"]))
        if "params" in settings or "tokens" in settings:
            self.params.set_value(float(settings.get("params", self.params.value())), emit=False)
            self.tokens.set_value(float(settings.get("tokens", self.tokens.value())), emit=False)
            self._point_changed()
        views = ("loss", "isoflop", "frontier", "runs")
        if settings.get("view") in views:
            self.tabs.setCurrentIndex(views.index(settings["view"]))

    def _use_optimum(self) -> None:
        a = self._last_optimum
        self.params.set_value(a.params, emit=False)
        self.tokens.set_value(a.tokens, emit=False)
        self._point_changed()

    # ------------------------------------------------------------------ N, D point
    def _preset_chosen(self, index: int) -> None:
        name = self.preset.itemData(index)
        m = next((m for m in self.known if m.name == name), None)
        if m is None:
            return
        self.params.set_value(m.params, emit=False)
        self.tokens.set_value(m.tokens, emit=False)
        self._point_changed()

    def _point_changed(self) -> None:
        law = sc.get_law(self.law_key)
        N, D = self.params.value(), self.tokens.value()
        C = 6.0 * N * D
        gpu, mfu = self.gpu.currentText(), self.mfu.value()
        v = sc.verdict(law, N, D)
        L = float(sc.loss(law, N, D))
        color = {"under-trained": "#d03030", "over-trained": "#c77700"}.get(v.label, "#2e8b57")
        self.point_info.setText(
            f"C = 6ND = <b>{_fmt(C)}</b> FLOPs = {_fmt(C / sc.FLOPS_PER_PF_DAY)} PF-days = "
            f"{_fmt(sc.gpu_days(C, gpu, mfu))} {gpu}-days at {mfu:.0%} MFU<br>"
            f"{v.tokens_per_param:,.1f} tokens/param (optimum {v.optimal_tokens_per_param:,.1f}): "
            f"<b style='color:{color}'>{v.label}</b> relative to {escape(law.name)}<br>"
            f"predicted loss {L:.3f} nats<br><span style='color:#888'>{escape(v.explanation)}</span>")
        self.point_math.set_source(lambda: sc.arithmetic_compute(N, D, gpu, mfu) + "\n"
                                   + sc.arithmetic_loss(law, N, D))
        self._dirty |= {"point"}
        self._update_extrapolation()
        self._draw_markers()

    # Markers move with the sliders. Only the visible tab's are redrawn during a drag
    # (each pyqtgraph setData costs ~1 ms); the others catch up when their tab is shown.
    def _draw_markers(self, *_):
        tab = self.tabs.currentIndex()
        law = sc.get_law(self.law_key)
        if "budget" in self._dirty or "point" in self._dirty:
            self._dirty |= {f"{kind}{t}" for kind in self._dirty & {"budget", "point"} for t in range(4)}
            self._dirty -= {"budget", "point"}
        C_budget = self.compute.value()
        N, D = self.params.value(), self.tokens.value()
        C = 6.0 * N * D
        if f"budget{tab}" in self._dirty:
            if tab == 0:
                self.c_line.setValue(math.log10(C_budget))
            elif tab == 1:
                cur = sc.iso_flop_curve(law, C_budget, n=61, span=300.0)
                self.iso_current.setData(cur["params"], cur["loss"])
                self.iso_current_opt.setData([cur["opt_params"]], [cur["opt_loss"]])
            elif tab == 2:
                self.fn_line.setValue(math.log10(C_budget))
                self.fd_line.setValue(math.log10(C_budget))
            self._dirty.discard(f"budget{tab}")
        if f"point{tab}" in self._dirty:
            if tab == 0:
                self.n_point.set(N, float(sc.loss_vs_params(law, N)))
                self.d_point.set(D, float(sc.loss_vs_tokens(law, D)))
                self.c_point.set(C, float(sc.loss(law, N, D)))
            elif tab == 1:       # the point on the iso-FLOP plot: loss at its own compute
                self.iso_point.set(N, float(sc.loss(law, N, D)))
            elif tab == 2:
                self.fn_point.set(C, N)
                self.fd_point.set(C, D)
            elif tab == 3:
                pred = float(self.fit.predict(N, D)) if self.fit is not None else None
                # only inside the fitted range: a far-away point would zoom the runs out of sight
                if pred is None or self.fit.extrapolation_warning(N, D):
                    self.runs_point.set(None, None)
                else:
                    self.runs_point.set(N, pred)
            self._dirty.discard(f"point{tab}")

    # ------------------------------------------------------------------ runs and fit
    RUNS_TAB = 3

    def _runs_tab_shown(self, index: int) -> None:
        """The lab's own sweep gets its fit the first time someone looks at it (not at start-up)."""
        if (index == self.RUNS_TAB and self.fit is None and not self.fit_running and self.runs is not None
                and self.sweep_path is not None and self.runs.source == str(self.sweep_path)
                and len(self.runs) >= sc.MIN_RUNS):
            self.start_fit(self.runs)

    def _load_sweep(self) -> None:
        path = sc.zoo_sweep_path()
        self.sweep_path = path if path.is_file() else None
        self.sweep_button.setEnabled(self.sweep_path is not None)
        if self.sweep_path is None:
            self.sweep_button.setToolTip("models/scaling_runs.csv is not there yet (python -m models.sweep)")
            return
        self.sweep_button.setToolTip(str(path))
        try:
            self._show_runs(sc.read_runs(path))
        except LabError as err:
            self.fit_info.setText(escape(str(err)))

    def choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Runs CSV", "", "CSV files (*.csv);;All files (*)")
        if path:
            self.load_csv(path)

    def fit_sweep(self) -> None:
        if self.sweep_path is not None:
            self.load_csv(self.sweep_path)

    def load_csv(self, path, bootstrap: int = 200) -> None:
        """Read a runs CSV (bad rows listed) and fit it in the background."""
        try:
            runs = sc.read_runs(path)
        except LabError as err:
            self.fit_info.setText(f"<span style='color:#d03030'>{escape(str(err))}</span>")
            return
        self._show_runs(runs)
        if len(runs) < sc.MIN_RUNS:
            self.fit_info.setText(f"<span style='color:#d03030'>Need at least {sc.MIN_RUNS} good runs to fit "
                                  f"5 constants; {len(runs)} in {escape(str(path))}.</span>")
            return
        self.start_fit(runs, bootstrap)

    def start_fit(self, runs: sc.Runs, bootstrap: int = 200) -> None:
        """Fit on a pool thread, not the model worker: a fit must not hold up model work."""
        if self._fit_job is not None:
            self._fit_job.cancel()
        self._fit_id += 1
        fit_id = self._fit_id
        if runs is not self.runs:
            self._show_runs(runs)
        self.fit_running = True
        self.fit_progress.setValue(0)
        self.fit_progress.show()
        self.cancel_button.setEnabled(True)
        self.fit_info.setText(f"Fitting {len(runs)} runs (grid of {sc.init_grid().shape[0]} starts, "
                              f"{bootstrap} bootstrap resamples)…")
        sig = self._fit_signals
        job = Job(on_progress=lambda f, st: sig.progress.emit(fit_id, f, st))
        self._fit_job = job
        QThreadPool.globalInstance().start(_FitRunnable(fit_id, runs, bootstrap, job, sig))

    def cancel_fit(self) -> None:
        if self._fit_job is not None:
            self._fit_job.cancel()

    def _fit_progress(self, fit_id: int, fraction: float, stage: str) -> None:
        if fit_id == self._fit_id and self.fit_running:
            self.fit_progress.setValue(int(fraction * 100))
            self.fit_progress.setFormat(f"{stage} %p%")

    def _fit_finished(self) -> None:
        self.fit_running = False
        self._fit_job = None
        self.fit_progress.hide()
        self.cancel_button.setEnabled(False)

    def _on_fit_failed(self, fit_id: int, message: str) -> None:
        if fit_id != self._fit_id:
            return                              # a newer fit replaced this one
        self._fit_finished()
        self.fit_info.setText(f"<span style='color:#d03030'>{escape(message)}</span>")

    def _on_fit_done(self, fit_id: int, fit) -> None:
        if fit_id == self._fit_id:
            self._fit_done(fit)

    def _fit_done(self, fit: sc.Fit) -> None:
        self._fit_finished()
        self.fit = fit
        c, iv = fit.constants, fit.intervals
        rows = "".join(
            f"<tr><td>{k}</td><td align=right>{c[k]:.4g}</td><td>"
            + (f"[{iv[k][0]:.4g}, {iv[k][1]:.4g}]" if k in iv else "") + "</td></tr>"
            for k in sc.FIT_NAMES)
        g = sc.frontier_exponents(fit.law())
        hold = fit.holdout.get("note", fit.holdout.get("reason", ""))
        self.fit_info.setText(
            f"<b>L = E + A/N<sup>α</sup> + B/D<sup>β</sup></b> fitted to {fit.n_runs} runs "
            f"in {fit.elapsed_s:.2f} s<table>{rows}</table>"
            f"{fit.level:.0%} bootstrap intervals ({fit.bootstrap_samples} resamples). "
            f"Frontier N<sub>opt</sub> ∝ C<sup>{g['a']:.2f}</sup>, D<sub>opt</sub> ∝ C<sup>{g['b']:.2f}</sup>.<br>"
            f"Extrapolation check: {escape(hold)}<br>"
            + "".join(f"<span style='color:#c77700'>Warning: {escape(w)}</span><br>" for w in fit.warnings)
            + f"<span style='color:#888'>{escape(fit.source)}</span>")
        self._draw_fit()
        self._update_extrapolation()
        self._dirty.add("point3")
        self._draw_markers()

    def _show_runs(self, runs: sc.Runs) -> None:
        self.runs = runs
        self.fit = None
        self.plot_runs.clear()
        self.runs_point = Marker(self.plot_runs)
        self.plot_resid.getPlotItem().clear()
        self.plot_resid.getPlotItem().addLine(y=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.bad_rows.clear()
        for b in runs.bad_rows:
            self.bad_rows.addItem(f"line {b.line}: {b.reason}  —  {b.text}")
        self.bad_rows.setVisible(bool(runs.bad_rows))
        self.fit_info.setText(f"{len(runs)} runs from {escape(Path(runs.source).name)}"
                              + (f"; {len(runs.bad_rows)} bad rows skipped (listed below)" if runs.bad_rows else ""))
        if len(runs):
            self._scatter_runs()

    def _token_groups(self):
        """Runs grouped by token budget when there are few budgets (a sweep), else one group."""
        D = self.runs.tokens
        uniq = np.unique(D)
        if len(uniq) <= 8:
            return [(d, D == d) for d in uniq]
        return [(None, np.ones(len(D), dtype=bool))]

    def _scatter_runs(self) -> None:
        r = self.runs
        groups = self._token_groups()
        cmap = pg.colormap.get("viridis")
        for i, (d, mask) in enumerate(groups):
            col = cmap.map(i / max(1, len(groups) - 1), mode="qcolor")
            self.plot_runs.plot(r.params[mask], r.loss[mask], pen=None, symbol="o", symbolSize=7,
                                symbolBrush=col, name=f"D = {_fmt(d)}" if d is not None else "runs")

    def _draw_fit(self) -> None:
        fit, r = self.fit, self.runs
        law = fit.law()
        cmap = pg.colormap.get("viridis")
        groups = self._token_groups()
        N = np.logspace(math.log10(r.params.min()) - 0.3, math.log10(r.params.max()) + 0.3, 100)
        for i, (d, mask) in enumerate(groups):
            col = cmap.map(i / max(1, len(groups) - 1), mode="qcolor")
            if d is not None:
                self.plot_runs.plot(N, sc.loss(law, N, d), pen=pg.mkPen(col, width=1.5))
        if groups[0][0] is None:
            # many budgets: the fitted loss at each run's own D
            self.plot_runs.plot(r.params, fit.predicted, pen=None, symbol="x", symbolSize=7,
                                symbolPen=LAW_COLORS["fit"], name="fitted")
        self.plot_runs.plot(N, sc.loss_vs_params(law, N), pen=pg.mkPen(LAW_COLORS["fit"], width=2,
                                                                        style=Qt.DashLine), name="fit, D → ∞")
        self.plot_resid.plot(r.compute_flops, fit.residuals, pen=None, symbol="o", symbolSize=6,
                             symbolBrush=LAW_COLORS["fit"])

    def _update_extrapolation(self) -> None:
        if self.fit is None:
            self.extrapolation.hide()
            return
        N, D = self.params.value(), self.tokens.value()
        warn = self.fit.extrapolation_warning(N, D)
        pred = float(self.fit.predict(N, D))
        self.extrapolation.setText(f"Your fit predicts {pred:.3f} nats at N = {_fmt(N)}, D = {_fmt(D)}. " + warn)
        self.extrapolation.setStyleSheet("color: #c77700;" if warn else "color: #2e8b57;")
        self.extrapolation.show()
