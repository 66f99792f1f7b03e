"""The scaling-laws plots: loss vs N, D, C; iso-FLOP curves; the compute-optimal frontier
with known models; your runs with the fitted law and its residuals.

Numbers come from ``lab.core.scaling``; the panel decides what to show and moves the
markers (created once here, so a slider drag only moves them).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy, QTabWidget

from lab.core import scaling as sc
from lab.ui import theme as lab_theme
from lab.ui.theme import small_font, title_size
from lab.ui.widgets import plot_export
from lab.ui.widgets.control_names import name_tabs
from lab.ui.widgets.log_plot import Marker, log_plot
from lab.ui.widgets.plot_grid import PlotGrid

LAW_COLORS = {"kaplan": "#d1495b", "chinchilla-1": "#edae49", "chinchilla-3": "#00798c",
              "epoch": "#6a4c93", "fit": "#2e8b57"}
ISO_BUDGETS = [10.0 ** e for e in range(18, 27)]          # FLOPs, one iso-FLOP curve per decade
C_RANGE = (18.0, 27.0)                                     # log10 FLOPs on the compute slider
N_RANGE = (6.0, 13.0)                                      # log10 parameters
D_RANGE = (7.0, 14.0)                                      # log10 tokens
PLOT_WIDTH = 290        # px a plot needs for its title, axes and a law's legend
RUNS_WIDTH = 400        # the runs and residual plots' titles are longer


def legend_name(name: str) -> str:
    """A law's name on two lines in a legend ("Chinchilla approaches 1/2<br>(20 tokens/param)")."""
    return name.replace(" (", "<br>(", 1)


class ScalingPlots(QTabWidget):
    """Four tabs of log-log plots. ``fmt`` formats a number for tooltips and legends."""

    RUNS_TAB = 3

    def __init__(self, known: list, fmt: Callable[[float], str], parent=None):
        super().__init__(parent)
        self._fmt = fmt
        # loss vs N, D, C: side by side while each gets PLOT_WIDTH px, else wrapped
        self.plot_n = log_plot("L(N), unlimited data", "parameters N", "loss (nats)")
        self.plot_d = log_plot("L(D), unlimited model", "tokens D", "loss (nats)")
        self.plot_c = log_plot("L(C), optimal allocation", "compute C (FLOPs)", "loss (nats)")
        self.addTab(PlotGrid([self.plot_n, self.plot_d, self.plot_c], PLOT_WIDTH), "Loss vs N, D, C")
        # iso-FLOP
        self.plot_iso = log_plot("Iso-FLOP curves: loss vs N<br>at fixed compute (★ = the law's optimum)",
                                 "parameters N", "loss (nats)")
        self.addTab(self.plot_iso, "Iso-FLOP")
        # frontier
        self.plot_fn = log_plot("Compute-optimal parameters", "compute C (FLOPs)", "parameters N")
        self.plot_fd = log_plot("Compute-optimal tokens", "compute C (FLOPs)", "tokens D")
        for p in (self.plot_fn, self.plot_fd):      # the frontier rises: its empty corner is bottom right
            p.getPlotItem().legend.setOffset((-5, -5))
        self.addTab(PlotGrid([self.plot_fn, self.plot_fd], PLOT_WIDTH), "Frontier && known models")
        # runs
        self.plot_runs = log_plot("Your runs and the fitted law", "parameters N", "loss (nats)", sparse=True)
        self.plot_resid = pg.PlotWidget()
        plot_export.attach(self.plot_resid, "residuals")
        rp = self.plot_resid.getPlotItem()
        rp.setTitle("Residuals:<br>log(observed) − log(fitted)", size=title_size(1.1))
        rp.setLabel("bottom", "compute C (FLOPs)")
        rp.setLabel("left", "log residual")
        rp.setLogMode(True, False)
        rp.getAxis("bottom").enableAutoSIPrefix(False)
        rp.getAxis("left").enableAutoSIPrefix(False)      # a short label: "(x0.001)" would not fit
        rp.showGrid(True, True, alpha=0.2)
        rp.addLine(y=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.plot_resid.setMinimumSize(160, 160)
        self.plot_resid.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)
        self.addTab(PlotGrid([self.plot_runs, self.plot_resid], RUNS_WIDTH), "Your runs")
        name_tabs(self)

        # markers that move with the sliders (created once)
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
        self._known_items(known)

    def _known_items(self, known: list) -> None:
        """Known models on the frontier plots: filled = compute reported, hollow = estimated (6ND)."""
        fmt = self._fmt
        ink = lab_theme.tone("ink")
        self._known_marks, self._known_texts = [], []
        rep = [m for m in known if m.compute_kind == "reported"]
        est = [m for m in known if m.compute_kind == "estimated"]
        for plot, attr in ((self.plot_fn, "params"), (self.plot_fd, "tokens")):
            for group, name, filled in ((rep, "known: compute reported", True),
                                        (est, "known: compute estimated (6ND)", False)):
                if not group:
                    continue
                item = plot.plot([m.compute_flops for m in group], [getattr(m, attr) for m in group], pen=None,
                                 symbol="d", symbolSize=9, symbolBrush=ink if filled else None,
                                 symbolPen=pg.mkPen(ink), name=name)
                self._known_marks.append((item, filled))
            for m in rep + est:
                t = pg.TextItem(m.name, color=lab_theme.tone("muted"), anchor=(0, 1))
                self._known_texts.append(t)
                t.setFont(small_font(0.8))
                t.setPos(math.log10(m.compute_flops), math.log10(getattr(m, attr)))
                t.setToolTip(f"{m.name}: N {fmt(m.params)} ({m.params_kind}; {m.params_source})\n"
                             f"D {fmt(m.tokens)} ({m.tokens_kind}; {m.tokens_source})\n"
                             f"C {fmt(m.compute_flops)} ({m.compute_kind}; {m.compute_source})")
                plot.addItem(t)
        self.known_plotted = len(rep) + len(est)
        lab_theme.notifier().changed.connect(self._retheme)

    def _retheme(self, _mode: str = "") -> None:
        """Known models drawn once: their ink follows a theme switch."""
        ink = lab_theme.tone("ink")
        for item, filled in self._known_marks:
            item.setSymbolBrush(ink if filled else None)
            item.setSymbolPen(pg.mkPen(ink))
        for t in self._known_texts:
            t.setColor(lab_theme.tone("muted"))

    # ------------------------------------------------------------------ law curves
    def draw_laws(self, laws: list, law_key: str) -> None:
        """The curves of ``laws`` (the chosen one thicker) and the chosen law's iso-FLOP family."""
        for plot, item in self._law_items:
            plot.removeItem(item)
        self._law_items = []
        N = np.logspace(*N_RANGE, 200)
        D = np.logspace(*D_RANGE, 200)
        C = np.logspace(*C_RANGE, 200)

        def add(plot, x, y, **kw):
            self._law_items.append((plot, plot.plot(x, y, **kw)))

        for law in laws:
            color = LAW_COLORS.get(law.key, "#444")
            width = 3 if law.key == law_key else 1.5
            pen = pg.mkPen(color, width=width)
            if law.kind == "ratio" and len(laws) > 1:
                pass   # same loss curves as approach 3: drawn once, under chinchilla-3
            else:
                add(self.plot_n, N, sc.loss_vs_params(law, N), pen=pen, name=legend_name(law.name))
                add(self.plot_d, D, sc.loss_vs_tokens(law, D), pen=pen, name=legend_name(law.name))
            add(self.plot_c, C, sc.loss_vs_compute(law, C), pen=pen, name=legend_name(law.name))
            fr = sc.frontier(law, C)
            add(self.plot_fn, C, fr["params"], pen=pen, name=legend_name(law.name))
            add(self.plot_fd, C, fr["tokens"], pen=pen, name=legend_name(law.name))
        # iso-FLOP family for the chosen law
        law = sc.get_law(law_key)
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
            symbolSize=12, symbolBrush=color, name=f"{legend_name(law.name)} optimum")

    # ------------------------------------------------------------------ markers
    def move_budget(self, tab: int, law, compute_flops: float) -> None:
        """The compute budget's marks on ``tab`` (the panel moves only the visible tab's)."""
        if tab == 0:
            self.c_line.setValue(math.log10(compute_flops))
        elif tab == 1:
            cur = sc.iso_flop_curve(law, compute_flops, n=61, span=300.0)
            self.iso_current.setData(cur["params"], cur["loss"])
            self.iso_current_opt.setData([cur["opt_params"]], [cur["opt_loss"]])
        elif tab == 2:
            self.fn_line.setValue(math.log10(compute_flops))
            self.fd_line.setValue(math.log10(compute_flops))

    def move_point(self, tab: int, law, N: float, D: float, fit) -> None:
        """The (N, D) model's markers on ``tab``; on the runs tab, the fit's prediction."""
        C = 6.0 * N * D
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
            pred = float(fit.predict(N, D)) if fit is not None else None
            # only inside the fitted range: a far-away point would zoom the runs out of sight
            if pred is None or fit.extrapolation_warning(N, D):
                self.runs_point.set(None, None)
            else:
                self.runs_point.set(N, pred)

    # ------------------------------------------------------------------ runs and fit
    def show_runs(self, runs: sc.Runs) -> None:
        """Clear the runs tab and scatter ``runs``, one colour per token budget."""
        self.plot_runs.clear()
        self.runs_point = Marker(self.plot_runs)
        self.plot_resid.getPlotItem().clear()
        self.plot_resid.getPlotItem().addLine(y=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        if not len(runs):
            return
        groups = _token_groups(runs)
        cmap = pg.colormap.get("viridis")
        for i, (d, mask) in enumerate(groups):
            col = cmap.map(i / max(1, len(groups) - 1), mode="qcolor")
            self.plot_runs.plot(runs.params[mask], runs.loss[mask], pen=None, symbol="o", symbolSize=7,
                                symbolBrush=col, name=f"D = {self._fmt(d)}" if d is not None else "runs")

    def draw_fit(self, fit: sc.Fit, runs: sc.Runs) -> None:
        """The fitted law over the runs (per token budget, or at each run's D) and the residuals."""
        law = fit.law()
        cmap = pg.colormap.get("viridis")
        groups = _token_groups(runs)
        N = np.logspace(math.log10(runs.params.min()) - 0.3, math.log10(runs.params.max()) + 0.3, 100)
        for i, (d, mask) in enumerate(groups):
            col = cmap.map(i / max(1, len(groups) - 1), mode="qcolor")
            if d is not None:
                self.plot_runs.plot(N, sc.loss(law, N, d), pen=pg.mkPen(col, width=1.5))
        if groups[0][0] is None:
            # many budgets: the fitted loss at each run's own D
            self.plot_runs.plot(runs.params, fit.predicted, pen=None, symbol="x", symbolSize=7,
                                symbolPen=LAW_COLORS["fit"], name="fitted")
        self.plot_runs.plot(N, sc.loss_vs_params(law, N), pen=pg.mkPen(LAW_COLORS["fit"], width=2,
                                                                        style=Qt.DashLine), name="fit, D → ∞")
        self.plot_resid.plot(runs.compute_flops, fit.residuals, pen=None, symbol="o", symbolSize=6,
                             symbolBrush=LAW_COLORS["fit"])


def _token_groups(runs: sc.Runs):
    """Runs grouped by token budget when there are few budgets (a sweep), else one group."""
    D = runs.tokens
    uniq = np.unique(D)
    if len(uniq) <= 8:
        return [(d, D == d) for d in uniq]
    return [(None, np.ones(len(D), dtype=bool))]
