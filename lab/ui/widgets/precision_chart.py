"""The precision converter's bar chart: one bar per precision for a chosen metric.

Rows in (``lab.core.precision.PrecisionRow``: plain numbers), bars out; no torch.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QVBoxLayout, QWidget

from lab.ui.widgets import plot_export

COLORS = {"fp32": "#4c72b0", "fp16": "#55a868", "int8": "#dd8452", "int4": "#c44e52"}

#: (label, row attribute, scale, unit) for the bar chart.
CHART_METRICS = [
    ("File size on disk", "file_bytes", 1e-6, "MB"),
    ("Runtime memory (session + one run)", "runtime_bytes", 1e-6, "MB"),
    ("Median latency", "latency_ms_median", 1.0, "ms"),
    ("Top-1 agreement with torch fp32", "top1_agreement", 100.0, "%"),
    ("Max |logit difference| vs torch fp32", "max_abs_logit_diff", 1.0, ""),
    ("KL(torch || onnx), next-token", "kl", 1.0, "nats"),
]


class PrecisionChart(QWidget):
    """A metric chooser over a fixed bar plot (no pan or zoom)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows = None          # the report's rows; None before any conversion
        self.metric_box = QComboBox()      # not "metric": that name is QWidget.metric(), which Qt calls
        for label, *_ in CHART_METRICS:
            self.metric_box.addItem(label)
        self.metric_box.currentIndexChanged.connect(self.redraw)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        plot_export.attach(self.plot, "precision")
        self.plot.showGrid(y=True, alpha=0.3)
        self.plot.getAxis("left").enableAutoSIPrefix(False)   # "0.4 MB", not "400 (x0.001)"
        self.bars = None
        self.bar_labels: list = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.metric_box)
        lay.addWidget(self.plot, 1)
        self.redraw()

    def set_rows(self, rows) -> None:
        """The rows of a report, or None for the empty state. Failed rows get no bar."""
        self.rows = None if rows is None else list(rows)
        self.redraw()

    def redraw(self, *_) -> None:
        self.plot.clear()
        self.bar_labels = []
        self.bars = None
        label, attr, scale, unit = CHART_METRICS[self.metric_box.currentIndex()]
        self.plot.setLabel("left", f"{label} ({unit})" if unit else label)
        if self.rows is None:
            # Not the plot's title: a hidden title keeps its text's width as the plot's minimum,
            # which pushed the later bars (int8, int4) out of a narrow chart.
            hint = pg.TextItem("Convert to compare\nthe precisions", anchor=(0.5, 0.5),   # fits a narrow chart
                               color=pg.getConfigOption("foreground"))
            hint.setPos(0.5, 0.5)
            self.plot.addItem(hint)
            self.plot.getAxis("bottom").setTicks([[]])
            self.plot.setXRange(0, 1, padding=0)
            self.plot.setYRange(0, 1, padding=0)
            return
        rows = [r for r in self.rows if r.error is None]
        values = []
        for r in rows:
            v = getattr(r, attr)
            values.append(float(v) * scale if v is not None and np.isfinite(v) else 0.0)
        x = np.arange(len(rows), dtype=float)
        brushes = [pg.mkBrush(COLORS.get(r.precision, "#888888")) for r in rows]
        self.bars = pg.BarGraphItem(x=x, height=np.asarray(values), width=0.6, brushes=brushes)
        self.plot.addItem(self.bars)
        self.plot.getAxis("bottom").setTicks([[(i, r.precision) for i, r in enumerate(rows)]])
        top = max(values) if values and max(values) > 0 else 1.0
        for i, (r, v) in enumerate(zip(rows, values)):
            raw = getattr(r, attr)
            text = "NaN" if raw is None or not np.isfinite(raw) else (f"{v:.3g}" if unit != "%" else f"{v:.1f}")
            t = pg.TextItem(text, anchor=(0.5, 1.0), color=pg.getConfigOption("foreground"))
            t.setPos(i, v)
            self.plot.addItem(t)
            self.bar_labels.append(t)
        self.plot.setXRange(-0.6, len(rows) - 0.4, padding=0)
        self.plot.setYRange(0, top * 1.18, padding=0)

    def values(self) -> list[float]:
        """Heights of the bars as drawn (for tests and the selftest)."""
        if self.bars is None:
            return []
        return [float(h) for h in self.bars.opts["height"]]
