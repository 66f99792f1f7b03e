"""Scaling laws panel: play with Kaplan / Chinchilla / Epoch laws, place real models, fit your runs.

All numbers come from ``lab.core.scaling`` (the same functions ``tvlab scaling`` prints).
Plots are log-log (lab.ui.widgets.scaling_plots). Slider drags only move the highlighted
curve and markers (the law's curves are rebuilt only when the law changes), so a drag costs
well under one frame. Fits run on the session's compute lane (a FitController), like every
other background job: progress, Esc and errors as everywhere else.

(Over 500 lines: four groups of controls — law, compute budget, parameters and tokens, your
runs' fit — drive one set of plots and one law selection; the plots live in
lab.ui.widgets.scaling_plots, the numbers in lab.core.scaling.)
"""
from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from lab.core import scaling as sc
from lab.core.errors import LabError
from lab.core.units import format_number, number_or_none
from lab.ui import theme as lab_theme
from lab.ui.controllers.fit import FitController
from lab.ui.panels.base import Panel
from lab.ui.widgets.arithmetic import Arithmetic
from lab.ui.widgets.column_scroll import ColumnScroll
from lab.ui.widgets.control_names import name_buttons, name_control
from lab.ui.widgets.log_slider import LogSlider
from lab.ui.widgets.scaling_plots import C_RANGE, D_RANGE, N_RANGE, PLOT_WIDTH, ScalingPlots

FIT = FitController.name


def _slider(lo_exp: float, hi_exp: float, value: float, unit: str) -> LogSlider:
    return LogSlider(lo_exp, hi_exp, value, unit, fmt=format_number, parse=number_or_none)


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
        self._fit_task = None            # the newest fit's task while it runs
        try:
            self.known = sc.load_known_models()
        except LabError:
            self.known = []
        self._dirty: set = set()
        session.register(FitController())
        session.channel_progress.connect(self._fit_progress)
        self._build_controls()
        self.plots = ScalingPlots(self.known, format_number)
        self.tabs = self.plots            # the tab widget: lessons and the selftest pick its tabs
        self.tabs.currentChanged.connect(self._draw_markers)
        self.tabs.currentChanged.connect(self._runs_tab_shown)
        split = self._split = QSplitter(Qt.Horizontal)
        scroll = self._controls_scroll = ColumnScroll(self.controls)
        split.addWidget(scroll)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.units_label)
        rl.addWidget(self.tabs, 1)
        split.addWidget(right)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 0)       # the controls keep their least width; the plots get the rest
        split.setStretchFactor(1, 1)
        split.setSizes([scroll.minimumSizeHint().width(), 10_000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(split)

        self._rebuild_law()
        self._load_sweep()

    def sizeHint(self) -> QSize:
        return QSize(960, 620)          # three plots side by side would otherwise ask for 2,300 px

    def resizeEvent(self, event) -> None:
        """Narrower than the controls and two plots: the controls go above the plots, so
        the plots keep room for their titles and axes."""
        super().resizeEvent(event)
        need = self._controls_scroll.minimumSizeHint().width() + 2 * PLOT_WIDTH
        orientation = Qt.Vertical if event.size().width() < need else Qt.Horizontal
        if self._split.orientation() != orientation:
            self._split.setOrientation(orientation)
            first = self._controls_scroll.minimumSizeHint()
            self._split.setSizes([first.width() if orientation == Qt.Horizontal else
                                  int(event.size().height() * 0.4), 10_000])

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
        name_control(self.budget_mode, "list", "Budget in")
        self.compute = _slider(*C_RANGE, 5.76e23, "FLOPs")
        self.compute.valueChanged.connect(self._compute_changed)
        f.addRow("Compute", self.compute)
        self.pf_days = _slider(C_RANGE[0] - math.log10(sc.FLOPS_PER_PF_DAY),
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
        name_buttons(self.use_optimum)
        f.addRow(self.use_optimum)
        self.optimum_math = Arithmetic()
        f.addRow(self.optimum_math)
        v.addWidget(g)
        self._budget_mode_changed(0)

        # N, D -> compute and verdict
        g = QGroupBox("Parameters and tokens → compute, verdict")
        f = QFormLayout(g)
        self.params = _slider(*N_RANGE, 70e9, "params")
        self.tokens = _slider(*D_RANGE, 1.4e12, "tokens")
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
        name_control(self.preset, "list", "Preset")
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
        lab_theme.tint(self.extrapolation, "warn")
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
        lab_theme.tint(self.units_label, "warn", " font-weight: bold;")
        self.units_label.hide()

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
        laws = self._laws_shown()
        note = sc.units_note(laws)
        self.units_label.setText(note)
        self.units_label.setVisible(bool(note))
        self.plots.draw_laws(laws, self.law_key)
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
            f"C = {format_number(C)} FLOPs = {format_number(a.pf_days)} PF-days ≈ {format_number(gd)} {self.gpu.currentText()}-days "
            f"at {self.mfu.value():.0%} MFU{budget}<br>"
            f"<b>N<sub>opt</sub> = {format_number(a.params)}</b> parameters, <b>D<sub>opt</sub> = {format_number(a.tokens)}</b> tokens "
            f"({a.tokens_per_param:,.1f} tokens/param)<br>predicted loss {a.loss:.3f} nats "
            f"<span style='color:{lab_theme.tone('faint')}'>({escape(law.name)})</span>")
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
            f"C = 6ND = <b>{format_number(C)}</b> FLOPs = {format_number(C / sc.FLOPS_PER_PF_DAY)} PF-days = "
            f"{format_number(sc.gpu_days(C, gpu, mfu))} {gpu}-days at {mfu:.0%} MFU<br>"
            f"{v.tokens_per_param:,.1f} tokens/param (optimum {v.optimal_tokens_per_param:,.1f}): "
            f"<b style='color:{color}'>{v.label}</b> relative to {escape(law.name)}<br>"
            f"predicted loss {L:.3f} nats<br><span style='color:{lab_theme.tone('faint')}'>{escape(v.explanation)}</span>")
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
        if f"budget{tab}" in self._dirty:
            self.plots.move_budget(tab, law, self.compute.value())
            self._dirty.discard(f"budget{tab}")
        if f"point{tab}" in self._dirty:
            self.plots.move_point(tab, law, self.params.value(), self.tokens.value(), self.fit)
            self._dirty.discard(f"point{tab}")

    # ------------------------------------------------------------------ runs and fit
    RUNS_TAB = ScalingPlots.RUNS_TAB

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
            self.sweep_button.setToolTip("models/scaling_runs.csv is not there yet (python -m models.training.sweep)")
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
            self.fit_info.setText(f"<span style='color:{lab_theme.tone('error')}'>{escape(str(err))}</span>")
            return
        self._show_runs(runs)
        if len(runs) < sc.MIN_RUNS:
            self.fit_info.setText(f"<span style='color:{lab_theme.tone('error')}'>Need at least {sc.MIN_RUNS} good runs to fit "
                                  f"5 constants; {len(runs)} in {escape(str(path))}.</span>")
            return
        self.start_fit(runs, bootstrap)

    def start_fit(self, runs: sc.Runs, bootstrap: int = 200) -> None:
        """Fit on the compute lane, not the model worker: a fit must not hold up model work.
        A newer fit replaces a running one (its result, if any, is dropped)."""
        if self._fit_task is not None:
            self._fit_task.job.cancel()
        if runs is not self.runs:
            self._show_runs(runs)
        self.fit_running = True
        self.fit_progress.setValue(0)
        self.fit_progress.show()
        self.cancel_button.setEnabled(True)
        self.fit_info.setText(f"Fitting {len(runs)} runs (grid of {sc.init_grid().shape[0]} starts, "
                              f"{bootstrap} bootstrap resamples)…")
        self._fit_task = self.session.send(FIT, "fit", {"runs": runs, "bootstrap": bootstrap},
                                           self._fit_done, self._on_fit_failed,
                                           label="fitting the scaling law", coalesce=True)

    def cancel_fit(self) -> None:
        """The panel's Cancel; Esc and Run ▸ Cancel reach the fit through the session."""
        if self.fit_running:
            self.session.cancel(FIT)

    def _fit_progress(self, channel: str, fraction: float, stage: str) -> None:
        if channel == FIT and self.fit_running:
            self.fit_progress.setValue(int(fraction * 100))
            self.fit_progress.setFormat(f"{stage} %p%")

    def _fit_finished(self) -> None:
        self.fit_running = False
        self._fit_task = None
        self.fit_progress.hide()
        self.cancel_button.setEnabled(False)

    def _on_fit_failed(self, message: str) -> None:
        self._fit_finished()
        self.fit_info.setText(f"<span style='color:{lab_theme.tone('error')}'>{escape(message)}</span>")

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
            + "".join(f"<span style='color:{lab_theme.tone('warn')}'>Warning: {escape(w)}</span><br>" for w in fit.warnings)
            + f"<span style='color:{lab_theme.tone('faint')}'>{escape(fit.source)}</span>")
        self.plots.draw_fit(fit, self.runs)
        self._update_extrapolation()
        self._dirty.add("point3")
        self._draw_markers()

    def _show_runs(self, runs: sc.Runs) -> None:
        self.runs = runs
        self.fit = None
        self.plots.show_runs(runs)
        self.bad_rows.clear()
        for b in runs.bad_rows:
            self.bad_rows.addItem(f"line {b.line}: {b.reason}  —  {b.text}")
        self.bad_rows.setVisible(bool(runs.bad_rows))
        self.fit_info.setText(f"{len(runs)} runs from {escape(Path(runs.source).name)}"
                              + (f"; {len(runs.bad_rows)} bad rows skipped (listed below)" if runs.bad_rows else ""))

    def _update_extrapolation(self) -> None:
        if self.fit is None:
            self.extrapolation.hide()
            return
        N, D = self.params.value(), self.tokens.value()
        warn = self.fit.extrapolation_warning(N, D)
        pred = float(self.fit.predict(N, D))
        self.extrapolation.setText(f"Your fit predicts {pred:.3f} nats at N = {format_number(N)}, D = {format_number(D)}. " + warn)
        lab_theme.tint(self.extrapolation, "warn" if warn else "good")
        self.extrapolation.show()
