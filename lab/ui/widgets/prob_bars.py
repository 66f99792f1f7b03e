"""Probability views for the decoding panel: candidate bars, the draw strip, step charts.

``CandidateBars`` draws one row per candidate token: the raw probability (grey-blue) and
the probability after the processors (orange) side by side, removed tokens greyed and
marked, the chosen token in green, the top-p cut as a line between rows, and beside the
bars the cumulative mass top-p reads with p marked. ``DrawStrip`` is the processed
distribution laid end to end on [0, 1] with the point where the draw fell. Plain data in
(lists, floats); no torch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics

from lab.ui import theme as lab_theme
from lab.ui.widgets import plot_export

RAW = QColor(110, 140, 190)
PROC = QColor(240, 140, 40)
CHOSEN = QColor(40, 170, 80)
REMOVED = QColor(175, 175, 175)


def prob_color(p: float) -> QColor:
    """Red (unlikely) through yellow to green (likely), on a log scale of probability."""
    p = max(1e-4, min(1.0, float(p)))
    t = (np.log10(p) + 4) / 4          # 1e-4 -> 0, 1 -> 1
    return QColor.fromHsvF(0.33 * t, 0.55, 0.95)


def fit_axis_labels(plot: pg.PlotItem) -> None:
    """A plot at least as wide as its bottom label and as tall as its left label (at the
    font in use: call again after a font change)."""
    for side, across, setter in (("bottom", "left", plot.setMinimumWidth), ("left", "bottom", plot.setMinimumHeight)):
        ax, other = plot.getAxis(side), plot.getAxis(across)
        if ax.isVisible() and ax.labelText:
            room = (other.fixedWidth or other.boundingRect().width()) if side == "bottom" else \
                (other.fixedHeight or other.boundingRect().height())
            setter(ax.label.boundingRect().width() + (room if other.isVisible() else 0) + 20)


def _short(token: str, n: int = 14) -> str:
    t = token.replace("\n", "⏎").replace("\t", "⇥")
    if t.strip() == "" and t:
        t = t.replace(" ", "␣")
    return t if len(t) <= n else t[: n - 1] + "…"


class CandidateBars(pg.GraphicsLayoutWidget):
    """Bars of the candidates of one step; click a row to force that token."""

    candidate_clicked = Signal(int)      # token id
    # every candidate's label (_apply_ticks names what fits); class defaults, as Qt may send
    # a resize while the widget is still being built
    _ticks: tuple = ()
    _chosen_rows: frozenset = frozenset()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(None)
        self.ci.setSpacing(2)
        self.bars = self.addPlot(row=0, col=0)
        self.cum = self.addPlot(row=0, col=1)
        self.ci.layout.setColumnStretchFactor(0, 4)
        self.ci.layout.setColumnStretchFactor(1, 1)
        plot_export.attach(self, "candidates")
        for p in (self.bars, self.cum):
            p.setMenuEnabled(False)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            p.invertY(True)
            p.showGrid(x=True, alpha=0.15)
        self.bars.setLabel("bottom", "probability (blue: raw · orange: processed)")
        self.cum.setLabel("bottom", "cumulative (top-p)")
        self.cum.setYLink(self.bars)
        self.cum.getAxis("left").setStyle(showValues=False)
        self.cum.setXRange(0, 1.02, padding=0)
        self.bars.getAxis("left").setWidth(120)
        self.bars.getAxis("left").setStyle(hideOverlappingLabels=False)
        for p in (self.bars, self.cum):
            p.getAxis("bottom").enableAutoSIPrefix(False)
        self.cum.getAxis("bottom").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")], []])
        self._ids: list[int] = []
        self._items: list = []
        self.scene().sigMouseClicked.connect(self._clicked)
        self.setMinimumHeight(260)
        self.setAccessibleName("Candidate probabilities")
        self.setAccessibleDescription("No candidates yet")
        self._fit_labels()

    def _fit_labels(self) -> None:
        fit_axis_labels(self.cum)
        fit_axis_labels(self.bars)
        self.setMinimumWidth(int(self.bars.minimumWidth() + self.cum.minimumWidth() + 10))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:
            self._fit_labels()

    def _apply_ticks(self) -> None:
        """Name as many candidates as the axis has room for (every k-th, and always the
        chosen one), so the labels never print over each other at any height or font."""
        ticks = self._ticks
        if not ticks:
            return
        height = self.bars.getViewBox().sceneBoundingRect().height()
        line = QFontMetrics(self.bars.getAxis("left").font()).lineSpacing()
        step = max(1, int(np.ceil(len(ticks) * line / max(height, 1.0)))) if height > 0 else 1
        keep = [t for i, t in enumerate(ticks) if i % step == 0 or i in self._chosen_rows]
        if step > 1:       # a chosen row next to a kept one would collide: drop that neighbour
            rows = {t[0] for t in keep}
            keep = [t for t in keep if t[0] in self._chosen_rows
                    or not any(abs(t[0] - c) < step and t[0] != c for c in self._chosen_rows & rows)]
        self.bars.getAxis("left").setTicks([keep, []])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self.closed:                # pyqtgraph's close() drops the scene, then resizes
            self._apply_ticks()

    def clear_bars(self) -> None:
        for it in self._items:
            it.getViewBox().removeItem(it) if it.getViewBox() is not None else None
        self._items = []
        self.bars.clear()
        self.cum.clear()
        self._ids = []

    def set_candidates(self, cands: list, cumulative: Optional[list[float]] = None,
                       top_p: Optional[float] = None, cut: Optional[int] = None) -> None:
        """``cands``: objects with id, token, raw_prob, prob, removed, removed_by, chosen."""
        self.clear_bars()
        n = len(cands)
        if not n:
            return
        self._ids = [c.id for c in cands]
        self.setAccessibleDescription("; ".join(
            f"{'chosen ' if c.chosen else ''}{c.token!r}: raw {c.raw_prob:.3f}, after the processors {c.prob:.3f}"
            + (f", removed by {c.removed_by}" if c.removed else "") for c in cands[:20]))
        y = np.arange(n, dtype=float)
        raw = np.array([c.raw_prob for c in cands])
        proc = np.array([c.prob for c in cands])
        raw_brush = [pg.mkBrush(REMOVED if c.removed else RAW) for c in cands]
        proc_brush = [pg.mkBrush(CHOSEN if c.chosen else PROC) for c in cands]
        self.bars.addItem(pg.BarGraphItem(x0=np.zeros(n), y=y - 0.19, height=0.36, width=raw, brushes=raw_brush,
                                          pens=[pg.mkPen(None)] * n))
        self.bars.addItem(pg.BarGraphItem(x0=np.zeros(n), y=y + 0.19, height=0.36, width=proc, brushes=proc_brush,
                                          pens=[pg.mkPen(CHOSEN, width=2) if c.chosen else pg.mkPen(None) for c in cands]))
        ticks = []
        for i, c in enumerate(cands):
            mark = "▶ " if c.chosen else ""
            tail = f"  ✕{c.removed_by}" if c.removed else ""
            ticks.append((i, f"{mark}{_short(c.token)}{tail}"))
        self._ticks = tuple(ticks)
        self._chosen_rows = frozenset(i for i, c in enumerate(cands) if c.chosen)
        self._apply_ticks()
        xmax = float(max(raw.max(), proc.max(), 1e-6)) * 1.08
        self.bars.setXRange(0, xmax, padding=0)
        self.bars.setYRange(-0.6, n - 0.4, padding=0)
        if cut is not None and 0 < cut < n:
            line = pg.InfiniteLine(pos=cut - 0.5, angle=0, pen=pg.mkPen((200, 40, 40), width=2, style=Qt.DashLine),
                                   label=f"top-p {top_p:g} cut",
                                   labelOpts={"position": 0.85, "color": (200, 40, 40), "anchors": [(0.5, 0), (0.5, 0)],
                                              "fill": (255, 255, 255, 210)})
            self.bars.addItem(line)
            self.cum.addItem(pg.InfiniteLine(pos=cut - 0.5, angle=0,
                                             pen=pg.mkPen((200, 40, 40), width=2, style=Qt.DashLine)))
        if cumulative:
            self.cum.plot(np.asarray(cumulative[:n]), y, pen=pg.mkPen(lab_theme.tone("muted"), width=2), symbol="o",
                          symbolSize=4, symbolBrush=lab_theme.tone("muted"))
        if top_p is not None and top_p < 1.0:
            self.cum.addItem(pg.InfiniteLine(pos=top_p, angle=90, pen=pg.mkPen((200, 40, 40), width=1),
                                             label=f"p={top_p:g}", labelOpts={"position": 0.97, "color": (200, 40, 40)}))
        self.cum.setXRange(0, 1.02, padding=0)

    def row_at(self, scene_pos) -> Optional[int]:
        vb = self.bars.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos) and not self.bars.getAxis("left").sceneBoundingRect().contains(scene_pos):
            return None
        y = vb.mapSceneToView(scene_pos).y()
        i = int(round(y))
        return i if 0 <= i < len(self._ids) else None

    def _clicked(self, event) -> None:
        i = self.row_at(event.scenePos())
        if i is not None:
            self.candidate_clicked.emit(self._ids[i])


class _FixedPlot(pg.PlotWidget):
    """A plot the user reads but does not pan, zoom or open menus on."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(None)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        plot_export.attach(self, "decoding")


class DrawStrip(_FixedPlot):
    """The processed distribution end to end on [0, 1] and where the random number fell."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.getAxis("left").setStyle(showValues=False)
        self.getAxis("left").setWidth(120)
        self.setLabel("bottom", "cumulative p: the draw picks the slice it lands in")
        self.setXRange(0, 1, padding=0.01)
        self.setYRange(0, 1, padding=0)
        self.setFixedHeight(78)
        self.setAccessibleName("Where the random draw fell in the processed distribution")

    def set_draw(self, cands: list, draw=None) -> None:
        """``draw``: an object with ``u`` (where the draw fell), or None."""
        self.clear()
        x = 0.0
        for i, c in enumerate(cands):
            if c.prob <= 0:
                continue
            color = CHOSEN if c.chosen else (PROC if i % 2 == 0 else PROC.darker(125))
            self.addItem(pg.BarGraphItem(x0=[x], y=[0.5], height=[0.8], width=[c.prob], brush=color,
                                         pen=pg.mkPen(lab_theme.plot_colors()[0], width=0.5)))
            x += c.prob
        if x < 1.0 - 1e-6:
            self.addItem(pg.BarGraphItem(x0=[x], y=[0.5], height=[0.8], width=[1.0 - x], brush=REMOVED.lighter(115),
                                         pen=pg.mkPen(None)))
        if draw is not None:
            self.addItem(pg.InfiniteLine(pos=draw.u, angle=90, pen=pg.mkPen(lab_theme.tone("ink"), width=3),
                                         label=f"u = {draw.u:.3f}",
                                         labelOpts={"position": 0.85, "color": lab_theme.tone("ink"),
                                                    "fill": pg.mkColor(lab_theme.plot_colors()[0])}))


class StepChart(pg.GraphicsLayoutWidget):
    """Entropy (bits) and P(end-of-sequence) per generated token; click a step to show it."""

    step_clicked = Signal(int)     # index into the generated tokens (0-based)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground(None)
        self.ent = self.addPlot(row=0, col=0)
        self.eos = self.addPlot(row=1, col=0)
        self.eos.setXLink(self.ent)
        plot_export.attach(self, "steps")
        for p, label in ((self.ent, "H (bits)"), (self.eos, "P(EOS)")):
            p.setMenuEnabled(False)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            p.setLabel("left", label)
            p.getAxis("left").setWidth(55)
            p.showGrid(y=True, alpha=0.2)
        self.ent.getAxis("bottom").setStyle(showValues=False)
        self.eos.setLabel("bottom", "generated token")
        self.eos.setYRange(0, 1, padding=0.05)
        self.eos.getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")], []])
        for p in (self.ent, self.eos):
            p.getAxis("left").enableAutoSIPrefix(False)
        self._n = 0
        self._marker = None
        self.scene().sigMouseClicked.connect(self._clicked)
        self.setAccessibleName("Entropy and P(end of sequence) per step")
        self._fit_height()

    def _fit_height(self) -> None:
        """Tall enough that each row holds its axis label, at any font size."""
        need = [self.ent.getAxis("left").label.boundingRect().width() + 14]
        if self.eos.isVisible():
            need.append(self.eos.getAxis("left").label.boundingRect().width() + 14)
        bottom = self.eos.getAxis("bottom") if self.eos.isVisible() else self.ent.getAxis("bottom")
        self.setFixedHeight(int(sum(max(n, 60) for n in need) + bottom.height() + 20))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:
            self._fit_height()

    def set_steps(self, entropy: list[float], p_eos: Optional[list[float]], tokens: list[str], current: int,
                  x_label: str = "generated token") -> None:
        """One point per step. ``p_eos=None`` (a masked LM: nothing ends) hides the P(EOS) row."""
        self.ent.clear()
        self.eos.clear()
        self.eos.setVisible(p_eos is not None)
        self._fit_height()
        axis = self.eos if p_eos is not None else self.ent
        self.ent.getAxis("bottom").setStyle(showValues=p_eos is None)
        self.ent.setLabel("bottom", x_label if p_eos is None else None)
        self.eos.setLabel("bottom", x_label)
        self._n = len(entropy)
        self.setAccessibleDescription("No steps yet" if not self._n else "Entropy in bits per step: " + ", ".join(
            f"{_short(t, 10)} {h:.2f}" for t, h in zip(tokens, entropy)))
        x = np.arange(1, self._n + 1)
        if self._n:
            self.ent.plot(x, entropy, pen=pg.mkPen((60, 110, 190), width=2), symbol="o", symbolSize=5,
                          symbolBrush=(60, 110, 190))
            if p_eos is not None:
                self.eos.plot(x, p_eos, pen=pg.mkPen((200, 60, 60), width=2), symbol="o", symbolSize=5,
                              symbolBrush=(200, 60, 60))
            ticks = [(i + 1, _short(t, 6)) for i, t in enumerate(tokens)]
            step = max(1, self._n // 16)
            axis.getAxis("bottom").setTicks([ticks[::step], []])
            # The empty chart pinned 0..1; entropies run to several bits, so the range follows the data.
            finite = [float(h) for h in entropy if np.isfinite(h)]
            self.ent.setYRange(0, max([1.0] + finite) * 1.1, padding=0)
        self.ent.setXRange(0.5, max(self._n, 10) + 0.5, padding=0)
        if not self._n:
            what = "entropy and P(EOS) of each new token" if p_eos is not None else "entropy of each fill"
            hint = pg.TextItem(f"{what} appear here as you step", color=lab_theme.tone("faint"), anchor=(0, 0.5))
            hint.setPos(0.7, 0.5)
            self.ent.setYRange(0, 1, padding=0)
            self.ent.addItem(hint)
            axis.getAxis("bottom").setTicks(None)
        if 1 <= current <= self._n:
            for p in (self.ent, self.eos):
                p.addItem(pg.InfiniteLine(pos=current, angle=90, pen=pg.mkPen((240, 140, 40), width=2)))

    def _clicked(self, event) -> None:
        for p in (self.ent, self.eos):
            vb = p.getViewBox()
            if vb.sceneBoundingRect().contains(event.scenePos()):
                i = int(round(vb.mapSceneToView(event.scenePos()).x()))
                if 1 <= i <= self._n:
                    self.step_clicked.emit(i - 1)
                return


class WaterfallChart(_FixedPlot):
    """The top candidates' probability after each stage of the chain, one line per stage."""

    COLORS = [(110, 140, 190), (150, 150, 150), (160, 90, 200), (40, 160, 160), (220, 60, 60), (240, 140, 40),
              (90, 170, 70), (200, 120, 170), (120, 90, 50), (30, 90, 160), (180, 180, 40)]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setLabel("left", "probability")
        self.setLabel("bottom", "candidate rank")
        self.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.getAxis("left").enableAutoSIPrefix(False)
        self.setMinimumHeight(150)

    def set_stages(self, stage_probs: list[tuple[str, np.ndarray]]) -> None:
        self.clear()
        self.plotItem.legend.clear()
        for i, (name, probs) in enumerate(stage_probs):
            color = self.COLORS[i % len(self.COLORS)]
            self.plot(np.arange(1, len(probs) + 1), probs, pen=pg.mkPen(color, width=2), name=name,
                      symbol="o", symbolSize=4, symbolBrush=color)
