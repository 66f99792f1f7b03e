"""Layers & attention: every layer, every head, and what each layer predicts.

Views: Model (thumbnails of every layer x head), Head (one heatmap, row = query,
column = key), Lines (two token columns, line opacity = weight), Aggregates (mean / max
over heads, rollout, per-head entropy, grouped-query heads), Logit lens, Intervene (ablate
heads or blocks, sweep every head, patch activations; its page is
lab.ui.widgets.intervene, its work the InterventionController). The numbers come
from ``lab.core.trace``; anything heavy or done with torch (a head kept on the GPU, rollout,
thumbnails, entropies, the lens, which needs the model) runs on the worker through
``session.request``, so the window never freezes. The views themselves are in
lab.ui.widgets.attention_views; this module (about 550 lines) wires six of them
to the selection and to their worker requests.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lab.core import trace as core_trace
from lab.core.resources import resource
from lab.core.trace import STACK_LABELS, display_tokens, hide_first_token, word_token
from lab.ui import theme as lab_theme
from lab.ui.controllers.interventions import InterventionController
from lab.ui.panels.base import Panel
from lab.ui.widgets.attention_views import AggregatesPage, LensPage, LinesPage, ModelView
from lab.ui.widgets.control_names import name_tabs
from lab.ui.widgets.heatmap import Heatmap
from lab.ui.widgets.intervene import InterventionPage
from lab.ui.widgets.view_export import save_view

# Above this many stored values, aggregates are computed on the worker (numpy is fine
# on the GUI thread below it; thumbnails and entropies use torch, so always the worker).
GUI_THREAD_LIMIT = 20_000_000


@dataclass(frozen=True)
class Example:
    """One example sentence: the word to look from, and what to look for."""
    title: str
    text: str
    word: str
    hint: str


def attention_examples() -> list[Example]:
    """The example sentences (resources/examples/attention.json)."""
    data = json.loads(resource("examples", "attention.json").read_text(encoding="utf-8"))
    return [Example(**e) for e in data["examples"]]


def _size(a) -> int:
    return int(np.prod(a.shape))


# --- the panel --------------------------------------------------------------------------------

class AttentionPanel(Panel):
    panel_id = "attention"
    title = "Layers & attention"
    area = "right"
    order = 30

    VIEWS = ("model", "head", "lines", "aggregates", "lens", "intervene")

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
        self.examples = attention_examples()
        self.example = QComboBox()
        self.example.addItem("Example sentences")
        for ex in self.examples:
            self.example.addItem(ex.title, ex.text)
        self.example.setToolTip("Load one of the course's example sentences and look from its key word")
        self.example.activated.connect(self._example_chosen)
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
        row1.addWidget(self.example)
        row1.addWidget(self.stack, 1)
        row1.addWidget(self.layer)
        row1.addWidget(self.head)
        row1.addWidget(self.token, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.hide_first)
        row2.addStretch(1)
        row2.addWidget(self.export_button)


        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #fff3cd; color: #7a5300; padding: 3px; border-radius: 3px;")
        self.banner.hide()
        self.note = QLabel()
        self.note.setWordWrap(True)
        lab_theme.tint(self.note, "muted")

        # views
        self.tabs = QTabWidget()
        self.model_view = ModelView()
        self.model_view.picked.connect(self._tile_picked)
        self.head_view = Heatmap()
        self.head_view.clicked.connect(lambda r, c: self._row_picked(r))
        self.lines_page = LinesPage()
        self.lines_view, self.lines_all = self.lines_page.view, self.lines_page.all
        self.lines_view.picked.connect(self._row_picked)
        self.lines_all.toggled.connect(self._redraw)

        self.agg_page = AggregatesPage()
        self.agg_kind, self.agg_view = self.agg_page.kind, self.agg_page.view
        self.entropy_plot, self.gqa_label = self.agg_page.entropy, self.agg_page.gqa
        self.agg_kind.currentIndexChanged.connect(self._redraw)
        self.agg_view.clicked.connect(lambda r, c: self._row_picked(r))
        self.entropy_plot.head_clicked.connect(lambda head: self._select(head=head))

        self.lens_page = LensPage()
        self.lens_title, self.lens_table = self.lens_page.title, self.lens_page.table

        self.tabs.addTab(self.model_view, "Model")
        self.tabs.addTab(self.head_view, "Head")
        self.tabs.addTab(self.lines_page, "Lines")
        self.tabs.addTab(self.agg_page, "Aggregates")
        self.tabs.addTab(self.lens_page, "Logit lens")
        self.intervene = InterventionPage()
        self.tabs.addTab(self.intervene, "Intervene")
        session.register(InterventionController())
        self.intervene.run.connect(self._intervene)
        self.intervene.cancel.connect(lambda op: self.session.cancel(f"interventions.{op}"))
        self.intervene.head_picked.connect(lambda stack, layer, head: self._select(stack=stack, layer=layer, head=head))
        session.channel_progress.connect(self._intervene_progress)
        name_tabs(self.tabs)
        self.tabs.setCurrentIndex(1)
        self.tabs.currentChanged.connect(self._redraw)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row1)
        lay.addLayout(row2)
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
        self.intervene.model_changed()

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
        self.intervene.set_stacks(list(trace.stacks), self.session.selection.stack)
        notes = list(trace.notes)
        self.note.setText(" ".join(notes))
        self.note.setToolTip("\n".join(notes))
        # the session emits selection_changed right after, which draws

    def on_selection_changed(self, selection) -> None:
        tr, sel = self.trace, selection
        if tr is None or sel.stack not in tr.attentions:
            return
        if self._pending_focus is not None and self._pending_focus[0] == tr.text:
            word, self._pending_focus = self._pending_focus[1], None
            token = word_token(tr, sel.stack, word)
            # Return only when the selection changes (it comes back here and draws); when the
            # word sits where the selection already is, select() is silent and this call draws.
            if token is not None and token != sel.token:
                self.session.select(token=token)
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
        if QGuiApplication.keyboardModifiers() & Qt.ShiftModifier:     # shift-click: a head to ablate
            self.intervene.add_head(self.session.selection.stack, layer, head, extend=True)
            return
        self._select(layer=layer, head=head)
        self.tabs.setCurrentWidget(self.head_view)

    def _example_chosen(self, index: int) -> None:
        self.example.setCurrentIndex(0)
        if index >= 1:
            self.show_example(index - 1)

    def show_example(self, i: int) -> None:
        """Load example sentence ``i`` and look from its key word in the head view."""
        ex = self.examples[i]
        self._pending_focus = (ex.text, ex.word)
        self.tabs.setCurrentWidget(self.head_view)
        self.session.set_prompt(ex.text, immediate=True)
        if self.trace is not None and self.trace is self.session.trace and self.trace.text == ex.text:
            self.on_selection_changed(self.session.selection)    # the same sentence again: no new trace
        self.session.notice.emit(ex.hint)

    def apply_lesson(self, settings: dict) -> None:
        """Settings a lesson file can give this panel (``panels.attention`` in the lesson):
        ``view`` (model, head, lines, aggregates, lens), ``hide_first`` (bool),
        ``aggregate`` (mean, max, rollout), ``lines_all`` (bool), ``intervene`` (the Intervene tab's
        fields, see InterventionPage.apply; ``run`` presses its button)."""
        if "hide_first" in settings:
            self.hide_first.setChecked(bool(settings["hide_first"]))
        if "lines_all" in settings:
            self.lines_all.setChecked(bool(settings["lines_all"]))
        if settings.get("aggregate") in ("mean", "max", "rollout"):
            self.agg_kind.setCurrentIndex(self.agg_kind.findData(settings["aggregate"]))
        if settings.get("view") in self.VIEWS:
            self.tabs.setCurrentIndex(self.VIEWS.index(settings["view"]))
        if isinstance(settings.get("intervene"), dict):
            op = self.intervene.apply(settings["intervene"])
            if op is not None:
                self.intervene.trigger(op)

    # --- interventions (on the worker, through the InterventionController) -------------------------
    def _intervene(self, op: str, args: dict) -> None:
        if self.card is None:
            self.intervene.failed(op, "Load a model first.")
            return
        if op != "patch":
            args = {**args, "text": self.session.prompt,
                    "decoder_text": self.session.target if self.card.kind == "encoder-decoder" else None}
        self.intervene.started(op)
        labels = {"ablate": "ablating", "sweep": "sweeping every head", "patch": "patching activations"}
        shows = {"ablate": self.intervene.show_ablation, "sweep": self.intervene.show_sweep,
                 "patch": self.intervene.show_patch}
        self.session.send("interventions", op, args, shows[op],
                          lambda message, op=op: self.intervene.failed(op, message),
                          channel=f"interventions.{op}", label=labels[op])

    def _intervene_progress(self, channel: str, fraction: float, stage: str) -> None:
        if channel.startswith("interventions."):
            self.intervene.progress(channel.split(".", 1)[1], fraction, stage)

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
                                     size=lab_theme.title_size(1.1))
        self.head_view.set_selected_row(sel.token - ro)
        self._shown_key = key

    def _draw_lines(self, tr, sel, matrix) -> None:
        m, mask, rows, cols, ro, co = self._shown(tr, sel.stack, matrix)
        if mask is not None:
            m = np.where(mask, 0.0, m)
        self.lines_page.set_data(m, rows, cols, sel.token - ro)

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
        # Thumbnails pool with torch: on the worker, unless the trace has them already.
        heavy = f"{sel.stack}@{core_trace.THUMB_SIZE}" not in tr.thumbs

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
                                            size=lab_theme.title_size(1.1))

            self._compute(f"agg:{sel.stack}:{sel.layer}:{how}", lambda: tr.aggregate(sel.stack, sel.layer, how),
                          draw, heavy)
        ent_heavy = sel.stack not in tr.entropies      # computed with torch: on the worker
        self._compute(f"entropy:{sel.stack}", lambda: tr.entropy(sel.stack), lambda e: self._draw_entropy(tr, sel, e),
                      ent_heavy)

    def _draw_entropy(self, tr, sel, ent: np.ndarray) -> None:
        groups = tr.kv_groups(sel.stack)
        H = ent.shape[1]
        q, k = tr.attentions[sel.stack].shape[2:]
        if tr.causal(sel.stack):
            uniform = float(np.mean(np.log(np.arange(1, q + 1))))
        else:
            uniform = float(np.log(k))
        self.agg_page.set_entropy(ent[sel.layer], groups, sel.head, uniform, sel.layer, tr.kv_heads.get(sel.stack, H))

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
        self.lens_page.set_lens(lens, tr.kind == "encoder-only")

    # --- export -------------------------------------------------------------------------------
    def current_view_widget(self) -> QWidget:
        return self.tabs.currentWidget()

    def export_view(self, path: str | Path, fmt: Optional[str] = None) -> str:
        """Save the current view as PNG or SVG (by ``fmt`` or the file's suffix)."""
        widget = self.current_view_widget()
        saved = save_view(widget, path, fmt, title=f"{self.title}: {self.tabs.tabText(self.tabs.currentIndex())}",
                          paint=self.lines_view.paint if widget is self.lines_page else None)
        if saved is None:
            self.session.error.emit(f"Could not write {path}.")
            return ""
        return str(saved)

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
