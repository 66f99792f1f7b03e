"""Layers & attention: every layer, every head, and what each layer predicts.

Views: Model (thumbnails of every layer x head), Head (one heatmap, row = query,
column = key), Lines (two token columns, line opacity = weight), Aggregates (mean / max
over heads, rollout, per-head entropy, grouped-query heads), Logit lens. The numbers come
from ``lab.core.trace``; anything heavy (a head kept on the GPU, rollout, thumbnails of a
long input, the lens, which needs the model) runs on the worker through
``session.request``, so the window never freezes.
"""
from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QMenu, QScrollArea, QSizePolicy, QSpinBox,
                               QTableWidget, QTableWidgetItem, QTabWidget, QToolButton, QVBoxLayout,
                               QWidget)

from lab.core import trace as core_trace
from lab.core.trace import STACK_LABELS, display_tokens, hide_first_token
from lab.ui.panels.base import Panel
from lab.ui.widgets.heatmap import Heatmap, attention_colormap, attention_lut, token_plot

# The course's sentences: (menu title, text, the word to look from, what to look for).
LESSONS = [
    ("“with”: who has the book?", "The teacher taught the students with the book.", "with",
     "Which word does “with” attend to: “taught” (the teacher used the book) or “students”?"),
    ("“bank” by the river", "I sat on the river bank and watched the water.", "bank",
     "Does “bank” look at “river”? Compare with the other “bank” sentence."),
    ("“bank” with money", "I deposited cash at the bank before noon.", "bank",
     "Does “bank” look at “cash” and “deposited”?"),
    ("What is “it”?", "The animal didn't cross the street because it was too tired.", "it",
     "Which heads send “it” to “animal”?"),
    ("Word order", "Dog bites man. Man bites dog.", "bites",
     "Same words, different order: do the two “bites” attend differently?"),
    ("To be or not to be", "To be, or not to be, that is the question.", "question",
     "Repeated words: do later “be”s look back at earlier ones?"),
]

# Above this many stored values, thumbnails and aggregates are computed on the worker.
GUI_THREAD_LIMIT = 20_000_000
# The lines view draws every query's lines up to this many tokens (else the selected one).
LINES_ALL_LIMIT = 96
GROUP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"]


def _size(a) -> int:
    return int(np.prod(a.shape))


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


# --- the panel --------------------------------------------------------------------------------

class AttentionPanel(Panel):
    panel_id = "attention"
    title = "Layers & attention"
    area = "right"
    order = 30

    VIEWS = ("model", "head", "lines", "aggregates", "lens")

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.trace = None
        self.card = None
        self._updating = False
        self._pending_focus: Optional[str] = None
        self._shown_key = None             # what the head view shows now
        self._lens = None
        self._lens_key = None
        self._cache: dict = {}             # (trace id, what) -> computed arrays

        # controls
        self.lesson = QComboBox()
        self.lesson.addItem("Lessons…")
        for title, text, word, hint in LESSONS:
            self.lesson.addItem(title, (text, word, hint))
        self.lesson.setToolTip("Load one of the course's sentences and look from its key word")
        self.lesson.activated.connect(self._lesson_chosen)
        self.stack = QComboBox()
        self.stack.setToolTip("Which attention: self, encoder, decoder, or decoder-to-encoder cross-attention")
        self.stack.currentIndexChanged.connect(self._stack_chosen)
        self.layer = QSpinBox()
        self.layer.setPrefix("layer ")
        self.layer.setToolTip("Layer (0 = the first block)")
        self.layer.valueChanged.connect(lambda v: self._select(layer=v))
        self.head = QSpinBox()
        self.head.setPrefix("head ")
        self.head.valueChanged.connect(lambda v: self._select(head=v))
        self.token = QComboBox()
        self.token.setToolTip("Query token: the row the lines view and the logit lens look from")
        self.token.setMinimumContentsLength(10)
        self.token.currentIndexChanged.connect(self._token_chosen)
        self.hide_first = QCheckBox("Hide first token (attention sink)")
        self.hide_first.setToolTip("Drop the first token and renormalise each row over the others: many "
                                   "heads park their weight on the first token, which hides the rest.")
        self.hide_first.toggled.connect(self._redraw)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("This view as PNG…", lambda: self._export_dialog("png"))
        menu.addAction("This view as SVG…", lambda: self._export_dialog("svg"))
        menu.addAction("Raw tensors as NPZ…", lambda: self._export_dialog("npz"))
        self.export_button.setMenu(menu)

        row1 = QHBoxLayout()
        row1.addWidget(self.lesson)
        row1.addWidget(self.stack, 1)
        row1.addWidget(self.layer)
        row1.addWidget(self.head)
        row1.addWidget(self.token, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.hide_first)
        row2.addStretch(1)
        row2.addWidget(self.export_button)

        # target text (encoder-decoder): shared with the prompt panel through the session
        self.target_row = QWidget()
        tr_lay = QHBoxLayout(self.target_row)
        tr_lay.setContentsMargins(0, 0, 0, 0)
        self.target = QLineEdit()
        self.target.setPlaceholderText("Target (decoder) text; empty = the model's own greedy output")
        self.target.editingFinished.connect(lambda: session.set_target(self.target.text()))
        self.target.setToolTip("Shared with the prompt panel's target box. The decoding panel's output "
                               "becomes the target while its “attention follows” option is on.")
        tr_lay.addWidget(QLabel("Target:"))
        tr_lay.addWidget(self.target, 1)
        follow = QLabel("or decode in the Decoding panel")
        follow.setStyleSheet("color: #666;")
        follow.setToolTip(self.target.toolTip())
        tr_lay.addWidget(follow)
        self.target_row.hide()
        session.target_changed.connect(self._target_from_session)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #fff3cd; color: #7a5300; padding: 3px; border-radius: 3px;")
        self.banner.hide()
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #666;")

        # views
        self.tabs = QTabWidget()
        self.model_view = ModelView()
        self.model_view.picked.connect(self._tile_picked)
        self.head_view = Heatmap()
        self.head_view.clicked.connect(lambda r, c: self._row_picked(r))
        self.lines_view = LinesView()
        self.lines_view.picked.connect(self._row_picked)
        self.lines_all = QCheckBox(f"All query tokens (up to {LINES_ALL_LIMIT})")
        self.lines_all.setChecked(True)
        self.lines_all.toggled.connect(self._redraw)
        lines_page = QWidget()
        lp = QVBoxLayout(lines_page)
        lp.setContentsMargins(0, 0, 0, 0)
        lp.addWidget(self.lines_all)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.lines_view)
        lp.addWidget(scroll, 1)
        self.lines_page = lines_page

        agg_page = QWidget()
        ap = QVBoxLayout(agg_page)
        ap.setContentsMargins(0, 0, 0, 0)
        agg_row = QHBoxLayout()
        self.agg_kind = QComboBox()
        self.agg_kind.addItem("Mean over heads", "mean")
        self.agg_kind.addItem("Max over heads", "max")
        self.agg_kind.addItem("Rollout up to this layer", "rollout")
        self.agg_kind.setToolTip("Rollout (Abnar & Zuidema 2020): multiply the head-averaged attention "
                                 "(plus the residual, 0.5·I) through the layers")
        self.agg_kind.currentIndexChanged.connect(self._redraw)
        agg_row.addWidget(QLabel("Aggregate:"))
        agg_row.addWidget(self.agg_kind)
        agg_row.addStretch(1)
        ap.addLayout(agg_row)
        self.agg_view = Heatmap()
        self.agg_view.clicked.connect(lambda r, c: self._row_picked(r))
        ap.addWidget(self.agg_view, 2)
        self.entropy_plot = pg.PlotWidget()
        self.entropy_plot.setMenuEnabled(False)
        self.entropy_plot.hideButtons()
        self.entropy_plot.setMouseEnabled(x=False, y=False)
        self.entropy_plot.setLabel("bottom", "head")
        self.entropy_plot.setLabel("left", "entropy (nats)")
        self.entropy_plot.setMinimumHeight(170)
        self.entropy_plot.setTitle("Per-head entropy: low = sharp, high = diffuse")
        self.entropy_bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.entropy_plot.addItem(self.entropy_bars)
        self.uniform_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.entropy_plot.addItem(self.uniform_line)
        self.entropy_plot.getPlotItem().scene().sigMouseClicked.connect(self._entropy_clicked)
        ap.addWidget(self.entropy_plot, 1)
        self.gqa_label = QLabel()
        self.gqa_label.setWordWrap(True)
        ap.addWidget(self.gqa_label)
        self.agg_page = agg_page

        lens_page = QWidget()
        lp2 = QVBoxLayout(lens_page)
        lp2.setContentsMargins(0, 0, 0, 0)
        self.lens_title = QLabel("Select a token to read what each layer predicts after it.")
        self.lens_title.setWordWrap(True)
        lp2.addWidget(self.lens_title)
        self.lens_table = QTableWidget(0, 7)
        self.lens_table.setHorizontalHeaderLabels(["layer", "top 1", "top 2", "top 3", "top 4", "top 5",
                                                   "rank of final"])
        self.lens_table.verticalHeader().hide()
        self.lens_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.lens_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.lens_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.lens_table.horizontalHeader().setSectionResizeMode(6, QHeaderView.ResizeToContents)
        lp2.addWidget(self.lens_table, 1)
        self.lens_source = QLabel("Logit lens (nostalgebraist 2020): each layer's hidden state through the "
                                  "model's own final norm and output head; the last layer is not normed twice.")
        self.lens_source.setWordWrap(True)
        self.lens_source.setStyleSheet("color: #666;")
        lp2.addWidget(self.lens_source)
        self.lens_page = lens_page

        self.tabs.addTab(self.model_view, "Model")
        self.tabs.addTab(self.head_view, "Head")
        self.tabs.addTab(self.lines_page, "Lines")
        self.tabs.addTab(self.agg_page, "Aggregates")
        self.tabs.addTab(self.lens_page, "Logit lens")
        self.tabs.setCurrentIndex(1)
        self.tabs.currentChanged.connect(self._redraw)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(self.target_row)
        lay.addWidget(self.banner)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.note)
        self._enable(False)
        self.note.setText("Load a model and type a prompt to see its attention.")

    def sizeHint(self) -> QSize:
        return QSize(620, 640)

    # --- session events -----------------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        self.card = card
        self.target_row.setVisible(card is not None and card.kind == "encoder-decoder")

    def on_trace_changed(self, trace) -> None:
        self.trace = trace
        self._cache.clear()
        self._lens, self._lens_key = None, None
        self._shown_key = None
        if trace is None:
            self._enable(False)
            self.head_view.clear()
            self.model_view.clear()
            self.note.setText("Capturing…" if self.session.prompt else "Type a prompt to see its attention.")
            return
        self._enable(True)
        self._updating = True
        self.stack.clear()
        for s in trace.stacks:
            self.stack.addItem(STACK_LABELS.get(s, s), s)
        self._updating = False
        notes = list(trace.notes)
        self.note.setText(" ".join(notes))
        self.note.setToolTip("\n".join(notes))
        # the session emits selection_changed right after, which draws

    def on_selection_changed(self, sel) -> None:
        tr = self.trace
        if tr is None or sel.stack not in tr.attentions:
            return
        if self._pending_focus is not None and self._pending_focus[0] == tr.text:
            word, self._pending_focus = self._pending_focus[1], None
            labels = [t.lower() for t in display_tokens(tr, sel.stack, "query")]
            if word.lower() in labels:
                self.session.select(token=labels.index(word.lower()))
                return
        self._updating = True
        self.stack.setCurrentIndex(max(0, tr.stacks.index(sel.stack)))
        self.layer.setRange(0, tr.layers(sel.stack) - 1)
        self.head.setRange(0, tr.heads(sel.stack) - 1)
        self.layer.setValue(sel.layer)
        self.head.setValue(sel.head)
        labels = display_tokens(tr, sel.stack, "query")
        if self.token.count() != len(labels) + 1 or self.token.property("stack") != sel.stack \
                or self.token.property("trace") != id(tr):
            self.token.clear()
            self.token.addItem("(no token)", -1)
            for i, t in enumerate(labels):
                self.token.addItem(f"{i}: {t}", i)
            self.token.setProperty("stack", sel.stack)
            self.token.setProperty("trace", id(tr))
        self.token.setCurrentIndex(sel.token + 1 if sel.token < len(labels) else 0)
        self._updating = False
        self._redraw()

    def selftest_ready(self) -> bool:
        tr = self.session.trace
        return tr is not None and self.trace is tr and self.head_view.matrix is not None

    # --- user actions -------------------------------------------------------------------------
    def _select(self, **changes) -> None:
        if not self._updating and self.trace is not None:
            self.session.select(**changes)

    def _stack_chosen(self, index: int) -> None:
        if self._updating or self.trace is None or index < 0:
            return
        stack = self.stack.itemData(index)
        n_tok = len(self.trace.query_tokens(stack))
        sel = self.session.selection
        self.session.select(stack=stack, layer=min(sel.layer, self.trace.layers(stack) - 1),
                            head=min(sel.head, self.trace.heads(stack) - 1),
                            token=sel.token if sel.token < n_tok else n_tok - 1)

    def _token_chosen(self, index: int) -> None:
        if not self._updating and index >= 0:
            self._select(token=self.token.itemData(index))

    def _row_picked(self, row: int) -> None:
        offset = 1 if self._hiding() and self.session.selection.stack != "cross" else 0
        self._select(token=row + offset)

    def _tile_picked(self, layer: int, head: int) -> None:
        self._select(layer=layer, head=head)
        self.tabs.setCurrentWidget(self.head_view)

    def _entropy_clicked(self, event) -> None:
        vb = self.entropy_plot.getPlotItem().getViewBox()
        if self.trace is None or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        head = int(round(vb.mapSceneToView(event.scenePos()).x()))
        if 0 <= head < self.trace.heads(self.session.selection.stack):
            self._select(head=head)

    def _lesson_chosen(self, index: int) -> None:
        data = self.lesson.itemData(index)
        self.lesson.setCurrentIndex(0)
        if not data:
            return
        self.apply_lesson(index - 1)

    def apply_lesson(self, i: int) -> None:
        """Load lesson ``i``'s sentence and look from its key word in the head view."""
        title, text, word, hint = LESSONS[i]
        self._pending_focus = (text, word)
        self.tabs.setCurrentWidget(self.head_view)
        self.session.set_prompt(text, immediate=True)
        self.session.notice.emit(hint)

    def apply_settings(self, settings: dict) -> None:
        """Settings a lesson file can give this panel (``panels.attention`` in the lesson):
        ``view`` (model, head, lines, aggregates, lens), ``hide_first`` (bool),
        ``aggregate`` (mean, max, rollout), ``lines_all`` (bool)."""
        if "hide_first" in settings:
            self.hide_first.setChecked(bool(settings["hide_first"]))
        if "lines_all" in settings:
            self.lines_all.setChecked(bool(settings["lines_all"]))
        if settings.get("aggregate") in ("mean", "max", "rollout"):
            self.agg_kind.setCurrentIndex(self.agg_kind.findData(settings["aggregate"]))
        if settings.get("view") in self.VIEWS:
            self.tabs.setCurrentIndex(self.VIEWS.index(settings["view"]))

    def _target_from_session(self, text: str) -> None:
        if self.target.text() != text:
            self.target.setText(text)

    # --- drawing ------------------------------------------------------------------------------
    def _enable(self, on: bool) -> None:
        for w in (self.stack, self.layer, self.head, self.token, self.hide_first, self.export_button):
            w.setEnabled(on)

    def _hiding(self) -> bool:
        return self.hide_first.isChecked()

    def _view(self) -> str:
        return self.VIEWS[self.tabs.currentIndex()]

    def _redraw(self, *_) -> None:
        tr = self.trace
        if tr is None or self._updating:
            return
        sel = self.session.selection
        if sel.stack not in tr.attentions:
            return
        self._update_banner(sel)
        view = self._view()
        if view == "model":
            self._draw_model(tr, sel)
        elif view == "lines":
            self._with_head(tr, sel, lambda m: self._draw_lines(tr, sel, m))
        elif view == "aggregates":
            self._draw_aggregates(tr, sel)
        elif view == "lens":
            self._draw_lens(tr, sel)
        # the head view is what selftest and the first look wait for: keep it current
        if view == "head" or self.head_view.matrix is None:
            self._with_head(tr, sel, lambda m: self._draw_head(tr, sel, m))

    def _update_banner(self, sel) -> None:
        if self._hiding():
            first = display_tokens(self.trace, sel.stack, "key")[0]
            extra = " The model view still shows the raw weights." if self._view() == "model" else ""
            self.banner.setText(f"<b>First token hidden:</b> “{escape(first)}” is left out and every row is "
                                f"renormalised over the remaining tokens; these are not the model's raw "
                                f"weights.{extra}")
            self.banner.show()
        else:
            self.banner.hide()

    def _labels(self, tr, stack):
        return display_tokens(tr, stack, "query"), display_tokens(tr, stack, "key")

    def _shown(self, tr, stack, matrix):
        """Apply the hide-first-token option: (matrix, mask, row labels, col labels, row/col offsets)."""
        rows, cols = self._labels(tr, stack)
        mask = tr.mask(stack)
        if not self._hiding() or matrix.shape[1] < 2:
            return matrix, mask, rows, cols, 0, 0
        drop_q = stack != "cross"
        m = hide_first_token(matrix, drop_query=drop_q)
        if mask is not None:
            mask = mask[1:, 1:] if drop_q else mask[:, 1:]
        return m, mask, rows[1:] if drop_q else rows, cols[1:], 1 if drop_q else 0, 1

    def _with_head(self, tr, sel, draw: Callable[[np.ndarray], None]) -> None:
        """Call ``draw(matrix)`` with the selected head, fetching it on the worker if it lives on the GPU."""
        if tr.head_ready(sel.stack, sel.layer, sel.head):
            draw(tr.head(sel.stack, sel.layer, sel.head))
            return
        key = (sel.stack, sel.layer, sel.head)
        self.session.request("attention.head", lambda lm, job: tr.head(*key),
                             lambda m: self._fetched(tr, key), label="fetching a head", needs_model=False)

    def _fetched(self, tr, key) -> None:
        sel = self.session.selection
        if tr is self.trace and (sel.stack, sel.layer, sel.head) == key:
            self._redraw()

    def _draw_head(self, tr, sel, matrix) -> None:
        m, mask, rows, cols, ro, co = self._shown(tr, sel.stack, matrix)
        key = (id(tr), sel.stack, sel.layer, sel.head, self._hiding())
        self.head_view.set_matrix(m, rows, cols, mask=mask, row_offset=ro, col_offset=co,
                                  keep_view=self._shown_key is not None and self._shown_key[:2] == key[:2]
                                  and self._shown_key[4] == key[4])
        self.head_view.plot.setTitle(f"{STACK_LABELS.get(sel.stack, sel.stack)} — layer {sel.layer}, head {sel.head}",
                                     size="10pt")
        self.head_view.set_selected_row(sel.token - ro)
        self._shown_key = key

    def _draw_lines(self, tr, sel, matrix) -> None:
        m, mask, rows, cols, ro, co = self._shown(tr, sel.stack, matrix)
        if mask is not None:
            m = np.where(mask, 0.0, m)
        self.lines_all.setText(f"All query tokens (up to {LINES_ALL_LIMIT})" if m.shape[0] > LINES_ALL_LIMIT
                               else "All query tokens")
        self.lines_view.set_data(m, rows, cols, sel.token - ro, self.lines_all.isChecked())

    def _compute(self, what: str, fn: Callable[[], object], done: Callable[[object], None], heavy: bool) -> None:
        """Run ``fn`` here if it is light, else on the worker; cache per trace."""
        tr = self.trace
        key = (id(tr), what)
        if key in self._cache:
            done(self._cache[key])
            return
        if not heavy:
            self._cache[key] = fn()
            done(self._cache[key])
            return

        def finished(result, tr=tr, key=key):
            if tr is self.trace:
                self._cache[key] = result
                self._redraw()

        self.session.request(f"attention.{what.split(':')[0]}", lambda lm, job: fn(), finished,
                             label=f"computing {what.split(':')[0]}", needs_model=False)

    def _draw_model(self, tr, sel) -> None:
        a = tr.attentions[sel.stack]
        heavy = (tr.is_resident(sel.stack) or _size(a) > GUI_THREAD_LIMIT) \
            and f"{sel.stack}@{core_trace.THUMB_SIZE}" not in tr.thumbs

        def draw(th):
            self.model_view.set_thumbs(th)
            self.model_view.set_selected(sel.layer, sel.head)

        self._compute(f"thumbs:{sel.stack}", lambda: tr.thumbnails(sel.stack), draw, heavy)

    def _draw_aggregates(self, tr, sel) -> None:
        how = self.agg_kind.currentData()
        if how == "rollout" and sel.stack == "cross":
            self.agg_view.clear()
            self.agg_view.readout.setText("Rollout follows tokens through self-attention; choose a self-attention stack.")
        else:
            a = tr.attentions[sel.stack]
            per_layer = _size(a) // max(1, a.shape[0])
            heavy = tr.is_resident(sel.stack) or (per_layer * (sel.layer + 1 if how == "rollout" else 1)
                                                  > GUI_THREAD_LIMIT // 4)

            def draw(matrix):
                m, mask, rows, cols, ro, co = self._shown(tr, sel.stack, matrix)
                self.agg_view.set_matrix(m, rows, cols, mask=mask, row_offset=ro, col_offset=co)
                self.agg_view.set_selected_row(sel.token - ro)
                title = {"mean": "mean over heads", "max": "max over heads",
                         "rollout": f"rollout through layers 0–{sel.layer}"}[how]
                self.agg_view.plot.setTitle(f"{STACK_LABELS.get(sel.stack, sel.stack)} — layer {sel.layer}, {title}",
                                            size="10pt")

            self._compute(f"agg:{sel.stack}:{sel.layer}:{how}", lambda: tr.aggregate(sel.stack, sel.layer, how),
                          draw, heavy)
        ent_heavy = (tr.is_resident(sel.stack) or _size(tr.attentions[sel.stack]) > GUI_THREAD_LIMIT) \
            and sel.stack not in tr.entropies
        self._compute(f"entropy:{sel.stack}", lambda: tr.entropy(sel.stack), lambda e: self._draw_entropy(tr, sel, e),
                      ent_heavy)

    def _draw_entropy(self, tr, sel, ent: np.ndarray) -> None:
        groups = tr.kv_groups(sel.stack)
        group_of = {h: g for g, hs in enumerate(groups) for h in hs}
        H = ent.shape[1]
        brushes = [pg.mkBrush(GROUP_COLORS[group_of.get(h, 0) % len(GROUP_COLORS)] if len(groups) < H
                              else ("#e6550d" if h == sel.head else "#1f77b4")) for h in range(H)]
        self.entropy_bars.setOpts(x=np.arange(H), height=ent[sel.layer], width=0.8, brushes=brushes)
        q, k = tr.attentions[sel.stack].shape[2:]
        if tr.causal(sel.stack):
            uniform = float(np.mean(np.log(np.arange(1, q + 1))))
        else:
            uniform = float(np.log(k))
        self.uniform_line.setValue(uniform)
        self.entropy_plot.setYRange(0, max(uniform, float(np.max(ent[sel.layer]))) * 1.1, padding=0)
        self.entropy_plot.setXRange(-0.6, H - 0.4, padding=0)
        self.entropy_plot.setTitle(f"Per-head entropy, layer {sel.layer}: low = sharp, high = diffuse; "
                                   f"dashed = uniform attention ({uniform:.2f} nats)", size="9pt")
        kv = tr.kv_heads.get(sel.stack, H)
        if len(groups) < H:
            parts = ", ".join(f"kv {g}: heads {hs[0]}–{hs[-1]}" for g, hs in enumerate(groups))
            self.gqa_label.setText(f"Grouped-query attention: {H} query heads share {kv} key/value heads "
                                   f"({parts}); bars are coloured by group.")
        else:
            self.gqa_label.setText(f"Every one of the {H} heads has its own keys and values "
                                   "(no grouped-query attention).")

    def _draw_lens(self, tr, sel) -> None:
        stack = "decoder" if tr.kind == "encoder-decoder" else "self"
        if tr.kind == "encoder-decoder" and sel.stack == "encoder":
            self.lens_title.setText("The logit lens reads the decoder: choose the decoder or cross stack "
                                    "to pick a target position.")
            return
        n = tr.hidden[stack].shape[1]
        pos = sel.token if 0 <= sel.token < n else n - 1
        key = (id(tr), stack, pos)
        if self._lens_key == key and self._lens is not None:
            self._fill_lens(tr, self._lens)
            return
        self.lens_title.setText("Reading every layer…")

        def done(result, key=key, tr=tr):
            if tr is self.trace:
                self._lens, self._lens_key = result, key
                self._fill_lens(tr, result)

        def failed(message):
            self.lens_title.setText(message)

        self.session.request("attention.lens",
                             lambda lm, job: core_trace.logit_lens(lm, tr, pos, k=5, stack=stack),
                             done, failed, label="reading the logit lens")

    def _fill_lens(self, tr, lens) -> None:
        from lab.core.trace import display_token

        tok = display_token(lens.token)
        what = "masked-LM prediction at" if tr.kind == "encoder-only" else "next-token predictions after"
        self.lens_title.setText(
            f"Top-5 {what} position {lens.position} “{escape(tok)}”, read from every layer. "
            f"The model's final prediction is “{escape(display_token(lens.final_token))}”; the last "
            "column is its rank at each layer.")
        rows = lens.layers
        self.lens_table.setRowCount(len(rows))
        for r, layer in enumerate(rows):
            name = "embeddings" if layer.layer == 0 else f"after layer {layer.layer - 1}"
            self.lens_table.setItem(r, 0, QTableWidgetItem(name))
            for c in range(5):
                if c < len(layer.top_tokens):
                    t = display_token(layer.top_tokens[c])
                    item = QTableWidgetItem(f"{t}  {layer.top_probs[c]:.1%}")
                    if layer.top_ids[c] == lens.final_id:
                        item.setBackground(QColor(255, 200, 120))
                    item.setToolTip(f"id {layer.top_ids[c]}, probability {layer.top_probs[c]:.4f}")
                    self.lens_table.setItem(r, 1 + c, item)
            rank = QTableWidgetItem(f"{layer.final_rank:,}")
            rank.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            rank.setToolTip(f"probability of “{display_token(lens.final_token)}” here: {layer.final_prob:.4f}")
            self.lens_table.setItem(r, 6, rank)

    # --- export -------------------------------------------------------------------------------
    def current_view_widget(self) -> QWidget:
        return self.tabs.currentWidget()

    def export_view(self, path: str | Path, fmt: Optional[str] = None) -> str:
        """Save the current view as PNG or SVG (by ``fmt`` or the file's suffix)."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
        if path.suffix.lower() != f".{fmt}":
            path = path.with_name(path.name + f".{fmt}")
        widget = self.current_view_widget()
        if fmt == "png":
            ok = widget.grab().save(str(path), "PNG")
        elif fmt == "svg":
            from PySide6.QtSvg import QSvgGenerator

            gen = QSvgGenerator()
            gen.setFileName(str(path))
            gen.setSize(widget.size())
            gen.setViewBox(widget.rect())
            gen.setTitle(f"{self.title}: {self.tabs.tabText(self.tabs.currentIndex())}")
            painter = QPainter(gen)
            if widget is self.lines_page:
                self.lines_view.paint(painter)
            else:
                widget.render(painter)
            ok = painter.end()
        else:
            raise ValueError(fmt)
        if not ok or not path.exists():
            self.session.error.emit(f"Could not write {path}.")
            return ""
        return str(path)

    def export_npz(self, path: str | Path) -> str:
        if self.trace is None:
            return ""
        tr = self.trace

        def saved(p):
            self.session.notice.emit(f"Saved the raw attention tensors to {p}.")

        self.session.request("attention.npz", lambda lm, job: core_trace.save_npz(tr, path), saved,
                             label="saving NPZ", needs_model=False, coalesce=False)
        return str(path)

    def _export_dialog(self, fmt: str) -> None:
        filters = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)", "npz": "NumPy arrays (*.npz)"}
        default = f"attention-{self._view()}.{fmt}" if fmt != "npz" else "attention.npz"
        path, _ = QFileDialog.getSaveFileName(self, "Export", default, filters[fmt])
        if not path:
            return
        if fmt == "npz":
            self.export_npz(path)
        else:
            self.export_view(path, fmt)
