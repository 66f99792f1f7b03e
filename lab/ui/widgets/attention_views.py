"""Views of the Layers & attention panel: the model mosaic, the lines view, the aggregates
with the per-head entropy bars, and the logit-lens table. They draw what they are given
and know no panel."""
from __future__ import annotations

import math
from html import escape
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lab.core.trace import display_token
from lab.ui import theme as lab_theme
from lab.ui.theme import title_size
from lab.ui.widgets import plot_export
from lab.ui.widgets.heatmap import Heatmap, attention_colormap, attention_lut, token_plot

# The lines view draws every query's lines up to this many tokens (else the selected one).
LINES_ALL_LIMIT = 96
GROUP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"]


# --- model view: a mosaic of thumbnails ------------------------------------------------------

class ModelView(QWidget):
    """All heads of one stack as one image (layers down, heads across); click one to open it."""

    picked = Signal(int, int)      # layer, head

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphics, self.plot, self.left_axis, self.top_axis = token_plot()
        self.plot.setAspectLocked(False)
        self.plot.setLabel("left", "layer")
        self.plot.setLabel("top", "head")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(attention_lut())
        self.image.setLevels((0, 1))
        self.plot.addItem(self.image)
        self.marker = pg.QtWidgets.QGraphicsRectItem()
        self.marker.setPen(pg.mkPen("#e6550d", width=2, cosmetic=True))
        self.marker.setZValue(10)
        self.plot.addItem(self.marker)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=attention_colormap(), interactive=False,
                                        width=12, label="block maximum of weight")
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.caption = QLabel("Each tile is one head (row = query, column = key), shrunk by taking the "
                              "maximum of each block so sharp heads stay visible. Click a tile to open it.")
        self.caption.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics, 1)
        lay.addWidget(self.caption)
        self.shape = (0, 0)
        self.graphics.scene().sigMouseClicked.connect(self._clicked)

    def set_thumbs(self, thumbs: np.ndarray) -> None:
        """thumbs[layer, head, s, t] -> one mosaic with a one-cell gap between tiles."""
        L, H, s, t = thumbs.shape
        gap = max(1, s // 12)
        mosaic = np.full((L * (s + gap) - gap, H * (t + gap) - gap), np.nan, dtype=np.float32)
        for layer in range(L):
            for head in range(H):
                y, x = layer * (s + gap), head * (t + gap)
                mosaic[y:y + s, x:x + t] = thumbs[layer, head]
        self.image.setImage(mosaic, autoLevels=False, levels=(0, 1))
        self.image.setRect(QRectF(0, 0, H, L))
        self.shape = (L, H)
        self.left_axis.set_labels([str(i) for i in range(L)])
        self.top_axis.set_labels([str(i) for i in range(H)])
        self.plot.getViewBox().setRange(xRange=(0, H), yRange=(0, L), padding=0.01)

    def set_selected(self, layer: int, head: int) -> None:
        self.marker.setRect(QRectF(head, layer, 1, 1))

    def clear(self) -> None:
        self.image.clear()
        self.shape = (0, 0)

    def _clicked(self, event) -> None:
        if not self.shape[0]:
            return
        p = self.plot.getViewBox().mapSceneToView(event.scenePos())
        layer, head = int(math.floor(p.y())), int(math.floor(p.x()))
        if 0 <= layer < self.shape[0] and 0 <= head < self.shape[1]:
            self.picked.emit(layer, head)


# --- lines view -------------------------------------------------------------------------------

class LinesView(QWidget):
    """Query tokens on the left, key tokens on the right, one line per weight (opacity = weight)."""

    picked = Signal(int)           # query row clicked

    ROW = 20

    def __init__(self, parent=None):
        super().__init__(parent)
        self.matrix: Optional[np.ndarray] = None
        self.left: list[str] = []
        self.right: list[str] = []
        self.row = -1
        self.show_all = True
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumWidth(260)

    def set_data(self, matrix: np.ndarray, left: list[str], right: list[str], row: int, show_all: bool) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float32)
        self.left, self.right, self.row, self.show_all = list(left), list(right), row, show_all
        self.setMinimumHeight(self.ROW * (max(len(left), len(right)) + 1) + 10)
        self.update()

    def rows_drawn(self) -> list[int]:
        if self.matrix is None:
            return []
        if self.show_all and self.matrix.shape[0] <= LINES_ALL_LIMIT:
            return list(range(self.matrix.shape[0]))
        return [self.row] if 0 <= self.row < self.matrix.shape[0] else []

    def _geometry(self):
        fm = QFontMetrics(self.font())
        w = self.width()
        lx = min(w * 0.35, max((fm.horizontalAdvance(t) for t in self.left), default=40) + 16)
        rx = max(w * 0.65, w - max((fm.horizontalAdvance(t) for t in self.right), default=40) - 16)
        return lx, rx

    def _y(self, i: int) -> float:
        return self.ROW * (i + 1)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        self.paint(painter)
        painter.end()

    def paint(self, painter: QPainter) -> None:
        pal = self.palette()
        painter.fillRect(self.rect(), pal.base())
        if self.matrix is None:
            return
        lx, rx = self._geometry()
        rows = self.rows_drawn()
        base = QColor("#1f77b4")
        for i in rows:
            weights = self.matrix[i]
            for j in np.nonzero(np.nan_to_num(weights) >= 0.01)[0]:
                c = QColor(base)
                c.setAlphaF(float(min(1.0, weights[j])))
                painter.setPen(QPen(c, 2 if i == self.row else 1.5))
                painter.drawLine(QPointF(lx + 4, self._y(i)), QPointF(rx - 4, self._y(j)))
        text = pal.text().color()
        fm = QFontMetrics(self.font())
        for i, t in enumerate(self.left):
            r = QRectF(0, self._y(i) - self.ROW / 2, lx - 6, self.ROW)
            if i == self.row:
                painter.fillRect(r.adjusted(lx - 12 - fm.horizontalAdvance(t), 1, 4, -1), QColor(230, 85, 13, 60))
            painter.setPen(text)
            painter.drawText(r, Qt.AlignRight | Qt.AlignVCenter, t)
        for j, t in enumerate(self.right):
            painter.setPen(text)
            painter.drawText(QRectF(rx + 6, self._y(j) - self.ROW / 2, self.width() - rx - 6, self.ROW),
                             Qt.AlignLeft | Qt.AlignVCenter, t)

    def mousePressEvent(self, event) -> None:
        if self.matrix is None:
            return
        i = int(round(event.position().y() / self.ROW)) - 1
        if 0 <= i < len(self.left) and event.position().x() < self.width() / 2:
            self.picked.emit(i)


# --- per-head entropy -------------------------------------------------------------------------

class EntropyPlot(pg.PlotWidget):
    """One bar per head of a layer (low = sharp, high = diffuse), the uniform level dashed;
    bars are coloured by key/value group under grouped-query attention."""

    head_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.hideButtons()
        plot_export.attach(self, "entropy")
        self.setMouseEnabled(x=False, y=False)
        self.setLabel("bottom", "head")
        self.setLabel("left", "H (nats)")
        self.getPlotItem().getAxis("left").enableAutoSIPrefix(False)   # nats, never "(x0.001)"
        self._fit_height()
        self.setTitle("Per-head entropy: low = sharp, high = diffuse")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.addItem(self.bars)
        self.uniform_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.addItem(self.uniform_line)
        self.heads = 0
        self.getPlotItem().scene().sigMouseClicked.connect(self._clicked)

    def _fit_height(self) -> None:
        """Tall enough for the left axis label, its title and the head numbers."""
        plot = self.getPlotItem()
        label = plot.getAxis("left").label.boundingRect().width()
        title = plot.titleLabel.item.boundingRect().height()
        self.setMinimumHeight(int(max(170, label + title + 3 * self.fontMetrics().height() + 20)))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:
            self._fit_height()

    def set_entropy(self, values: np.ndarray, groups: list[list[int]], selected: int, uniform: float,
                    layer: int) -> None:
        """``values[head]`` of one layer; ``groups`` lists the heads of each key/value head."""
        group_of = {h: g for g, hs in enumerate(groups) for h in hs}
        H = len(values)
        brushes = [pg.mkBrush(GROUP_COLORS[group_of.get(h, 0) % len(GROUP_COLORS)] if len(groups) < H
                              else ("#e6550d" if h == selected else "#1f77b4")) for h in range(H)]
        self.bars.setOpts(x=np.arange(H), height=values, width=0.8, brushes=brushes)
        self.uniform_line.setValue(uniform)
        self.setYRange(0, max(uniform, float(np.max(values))) * 1.1, padding=0)
        self.setXRange(-0.6, H - 0.4, padding=0)
        self.setTitle(f"Per-head entropy, layer {layer}: low = sharp, high = diffuse<br>"
                      f"dashed = uniform attention ({uniform:.2f} nats)", size=title_size())
        self.heads = H
        self._fit_height()

    def _clicked(self, event) -> None:
        vb = self.getPlotItem().getViewBox()
        if not self.heads or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        head = int(round(vb.mapSceneToView(event.scenePos()).x()))
        if 0 <= head < self.heads:
            self.head_clicked.emit(head)


# --- logit lens ---------------------------------------------------------------------------------

class LensTable(QTableWidget):
    """Top-5 predictions read from every layer, and the rank of the final prediction."""

    def __init__(self, parent=None):
        super().__init__(0, 7, parent)
        self.setHorizontalHeaderLabels(["layer", "top 1", "top 2", "top 3", "top 4", "top 5", "rank of final"])
        self.verticalHeader().hide()
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(6, QHeaderView.ResizeToContents)

    def set_lens(self, lens) -> None:
        """``lens``: a lab.core.trace logit-lens result (its ``layers``, final token and id)."""
        rows = lens.layers
        self.setRowCount(len(rows))
        for r, layer in enumerate(rows):
            name = "embeddings" if layer.layer == 0 else f"after layer {layer.layer - 1}"
            self.setItem(r, 0, QTableWidgetItem(name))
            for c in range(5):
                if c < len(layer.top_tokens):
                    t = display_token(layer.top_tokens[c])
                    item = QTableWidgetItem(f"{t}  {layer.top_probs[c]:.1%}")
                    if layer.top_ids[c] == lens.final_id:
                        item.setBackground(QColor(255, 200, 120))
                        item.setForeground(QColor("#1b1b1b"))     # dark text on the light mark, in any theme
                    item.setToolTip(f"id {layer.top_ids[c]}, probability {layer.top_probs[c]:.4f}")
                    self.setItem(r, 1 + c, item)
            rank = QTableWidgetItem(f"{layer.final_rank:,}")
            rank.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            rank.setToolTip(f"probability of “{display_token(lens.final_token)}” here: {layer.final_prob:.4f}")
            self.setItem(r, 6, rank)


class LensPage(QWidget):
    """The logit-lens view: a title line (what is read, or why not), the table, the source."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a token to read what each layer predicts after it.")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.table = LensTable()
        lay.addWidget(self.table, 1)
        source = QLabel("Logit lens (nostalgebraist 2020): each layer's hidden state through the "
                        "model's own final norm and output head; the last layer is not normed twice.")
        source.setWordWrap(True)
        lab_theme.tint(source, "muted")
        lay.addWidget(source)

    def set_lens(self, lens, encoder_only: bool) -> None:
        tok = display_token(lens.token)
        what = "masked-LM prediction at" if encoder_only else "next-token predictions after"
        self.title.setText(
            f"Top-5 {what} position {lens.position} “{escape(tok)}”, read from every layer. "
            f"The model's final prediction is “{escape(display_token(lens.final_token))}”; the last "
            "column is its rank at each layer.")
        self.table.set_lens(lens)


class LinesPage(QWidget):
    """The lines view in a scroll area, with its "all query tokens" switch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.all = QCheckBox(f"All query tokens (up to {LINES_ALL_LIMIT})")
        self.all.setChecked(True)
        lay.addWidget(self.all)
        self.view = LinesView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.view)
        lay.addWidget(scroll, 1)

    def set_data(self, matrix: np.ndarray, left: list[str], right: list[str], row: int) -> None:
        self.all.setText(f"All query tokens (up to {LINES_ALL_LIMIT})" if matrix.shape[0] > LINES_ALL_LIMIT
                         else "All query tokens")
        self.view.set_data(matrix, left, right, row, self.all.isChecked())


class AggregatesPage(QWidget):
    """Mean / max over heads or rollout (a heatmap), and the per-head entropy bars."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.kind = QComboBox()
        self.kind.addItem("Mean over heads", "mean")
        self.kind.addItem("Max over heads", "max")
        self.kind.addItem("Rollout up to this layer", "rollout")
        self.kind.setToolTip("Rollout (Abnar & Zuidema 2020): multiply the head-averaged attention "
                             "(plus the residual, 0.5·I) through the layers")
        row.addWidget(QLabel("Aggregate:"))
        row.addWidget(self.kind)
        row.addStretch(1)
        lay.addLayout(row)
        self.view = Heatmap()
        lay.addWidget(self.view, 2)
        self.entropy = EntropyPlot()
        lay.addWidget(self.entropy, 1)
        self.gqa = QLabel()
        self.gqa.setWordWrap(True)
        lay.addWidget(self.gqa)

    def set_entropy(self, values: np.ndarray, groups: list[list[int]], selected: int, uniform: float,
                    layer: int, kv_heads: int) -> None:
        """The entropy bars of one layer, and what the grouping of key/value heads is."""
        self.entropy.set_entropy(values, groups, selected, uniform, layer)
        H = len(values)
        if len(groups) < H:
            parts = ", ".join(f"kv {g}: heads {hs[0]}–{hs[-1]}" for g, hs in enumerate(groups))
            self.gqa.setText(f"Grouped-query attention: {H} query heads share {kv_heads} key/value heads "
                             f"({parts}); bars are coloured by group.")
        else:
            self.gqa.setText(f"Every one of the {H} heads has its own keys and values "
                             "(no grouped-query attention).")
