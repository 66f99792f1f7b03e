"""Tokens & embeddings panel: what the model actually sees, and the vectors it starts from.

Views (tabs): the token chips with counts, the context-window bar, the source text and
the raw ids; two tokenizers side by side; the input embedding rows and their norms;
nearest neighbours of the selected token (input and, when untied, output embeddings);
a PCA projection; positional encodings; and "context changes meaning" (the bank preset).

All tokenizer and model work runs on the worker through ``session.request``; typing
re-tokenises after a short debounce. Every view exports a PNG and its data as CSV.
"""
from __future__ import annotations

from html import escape
from typing import Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QTabWidget, QVBoxLayout, QWidget

from lab.core import atomic
from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.panels.base import Panel
from lab.ui.widgets.control_names import name_tabs
from lab.ui.widgets.token_plots import MatrixView, ScatterView
from lab.ui.widgets.token_views import CompareView, ContextView, NeighboursView, PositionsView, TokensView, note, page
from lab.ui.widgets.view_export import save_view

DEBOUNCE_MS = 60               # re-tokenise this long after the last keystroke
EMBED_ROWS = 512               # embedding heatmap rows (the first tokens)
COMPARE_CHARS = 20_000         # side-by-side view of the first characters of a long text

VIEWS = ("tokens", "compare", "embeddings", "neighbours", "projection", "positions", "context")


class TokensPanel(Panel):
    panel_id = "tokens"
    title = "Tokens & embeddings"
    area = "right"
    tab_with = "attention"
    order = 20

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.tz = None                  # Tokenization of the current prompt
        self.rows = None                # EmbeddingRows
        self.neigh = []                 # [Neighbours] (input, maybe output)
        self.proj = None
        self._proj_pending = None       # (projection, selected) not drawn yet: its tab is hidden
        self.positions = None
        self.context_result = None
        self.comparison = None
        self.tied = True
        self._tokenized_text: Optional[str] = None
        self._compare_tokenizers: dict = {}   # touched only on the worker thread

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setElideMode(Qt.ElideNone)
        self.tabs.tabBar().setExpanding(False)
        self.tabs.setStyleSheet("QTabBar::tab { padding: 4px 7px; }")
        self._build_views()

        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.setToolTip("Save the current view as a PNG image")
        self.export_png_button.clicked.connect(lambda: self._export_dialog("png"))
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setToolTip("Save the data of the current view as CSV")
        self.export_csv_button.clicked.connect(lambda: self._export_dialog("csv"))
        self.error = note(tone="error")
        self.error.hide()
        bottom = QHBoxLayout()
        bottom.addWidget(self.error, 1)
        bottom.addStretch(0)
        bottom.addWidget(self.export_png_button)
        bottom.addWidget(self.export_csv_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs, 1)
        lay.addLayout(bottom)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.retokenize)
        session.prompt_changed.connect(self._prompt_changed)
        self.tabs.currentChanged.connect(self._tab_changed)

    # --- building the views -------------------------------------------------------------
    def _build_views(self) -> None:
        from lab.core import models
        from lab.core.embeddings import BANK_PRESET

        self.tokens_view = TokensView()
        v = self.tokens_view
        self.counts, self.family, self.context_bar, self.context_warning = (v.counts, v.family, v.context_bar,
                                                                            v.context_warning)
        self.readable, self.chips, self.chips_note, self.source, self.ids_view = (v.readable, v.chips, v.chips_note,
                                                                                  v.source, v.ids_view)
        self.readable.toggled.connect(self._readable_changed)
        self.chips.hovered.connect(self._hovered)
        self.chips.clicked.connect(self._clicked)
        v.copy_ids.clicked.connect(self.copy_ids_to_clipboard)
        self.tabs.addTab(v, "Tokens")

        self.compare_view = CompareView([f"zoo:{name}" for name in models.zoo_models()])
        self.compare_model, self.compare_table = self.compare_view.model, self.compare_view.table
        self.compare_counts = self.compare_view.counts
        self.compare_view.compare_requested.connect(self.run_compare)
        self.compare_view.browse_requested.connect(self._browse_compare)
        self.tabs.addTab(self.compare_view, "Compare")

        self.embed_note = note(tone="muted")
        self.embed_view = MatrixView("input embedding rows", bars=True)
        self.tabs.addTab(page((self.embed_note, 0), (self.embed_view, 1)), "Vectors")

        self.neighbours_view = NeighboursView()
        self.neigh_in, self.neigh_out = self.neighbours_view.inputs, self.neighbours_view.outputs
        self.tabs.addTab(self.neighbours_view, "Nearest")

        self.proj_view = ScatterView()
        self.proj_note = note(tone="muted")
        self.tabs.addTab(page((self.proj_view, 1), (self.proj_note, 0)), "PCA")

        self.positions_view = PositionsView()
        self.pos_source = self.positions_view.source
        self.tabs.addTab(self.positions_view, "Positions")

        self.context_view = ContextView(BANK_PRESET)
        c = self.context_view
        self.ctx_a, self.ctx_word_a, self.ctx_b, self.ctx_word_b = c.a, c.word_a, c.b, c.word_b
        self.ctx_view, self.ctx_note = c.plot, c.note
        c.run_requested.connect(self.run_context)
        self.tabs.addTab(c, "Context")
        name_tabs(self.tabs)

    # --- model and prompt --------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        self.error.hide()
        self.tz = None
        self.rows = None
        self.neigh = []
        self.proj = None
        self._proj_pending = None
        self.positions = None
        self.context_result = None
        self.comparison = None
        self._tokenized_text = None
        self.compare_view.clear(card.name if card is not None else "model A")
        if card is None:
            return
        self.retokenize()
        self.request_positions()
        if self.tabs.currentIndex() == VIEWS.index("context"):
            self.run_context()

    def _prompt_changed(self, text: str) -> None:
        self._timer.start()

    def retokenize(self) -> None:
        """Tokenise the session's prompt on the worker (the newest text always wins)."""
        self._timer.stop()
        if self.session.card is None:
            return
        text = self.session.prompt or ""
        from_model = self.session.card.name

        def work(lm, job):
            from lab.core import embeddings, tokens

            tz = tokens.tokenize(lm.tokenizer, text, model=from_model)
            n = min(tz.count, EMBED_ROWS)
            labels = [tz.label(i, True) for i in range(n)]
            rows = embeddings.rows(lm, tz.ids[:n], labels)
            return tz, rows, embeddings.tied(lm)

        self.session.request("tokens.tokenize", work, self._tokenized, self._failed, label="tokenizing")

    def _tokenized(self, result) -> None:
        tz, rows, tied = result
        self.error.hide()
        self.tz, self.rows, self.tied = tz, rows, tied
        self._tokenized_text = tz.text
        self._show_tokens()
        self._show_embeddings()
        sel = self.session.selection.token
        self._select_for_neighbours(sel if 0 <= sel < tz.count else self._first_text_token())
        if self.compare_model.currentText().strip() and self.comparison is not None:
            self.run_compare()

    def _failed(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def _first_text_token(self) -> int:
        if self.tz is None:
            return -1
        for i in range(self.tz.count):
            if not self.tz.special[i]:
                return i
        return 0 if self.tz.count else -1

    # --- tokens view ---------------------------------------------------------------------
    def _show_tokens(self) -> None:
        card = self.session.card
        self.tokens_view.show_tokens(self.tz, card.name if card is not None else "",
                                     card.context if card is not None else None,
                                     self.session.selection.token if self._selection_is_input() else -1)

    def ids_text(self) -> str:
        return ", ".join(map(str, self.tz.ids)) if self.tz is not None else ""

    def copy_ids_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.ids_text())

    def _readable_changed(self, on: bool) -> None:
        if self.comparison is not None:
            self._show_comparison()

    def _hovered(self, i: int) -> None:
        if self.tz is None or i < 0:
            sel = self.session.selection.token
            if self.tz is not None and self._selection_is_input() and 0 <= sel < self.tz.count:
                self.source.highlight(self.tz.starts[sel], self.tz.ends[sel], "#ffc9c9")
            else:
                self.source.highlight(0, 0)
            return
        self.source.highlight(self.tz.starts[i], self.tz.ends[i])

    def _selection_is_input(self) -> bool:
        return self.session.selection.stack in ("self", "encoder")

    def _clicked(self, i: int) -> None:
        stack = self.session.selection.stack
        if stack in ("decoder", "cross"):      # a click on the input selects an encoder token
            self.session.select(token=i, stack="encoder")
        else:
            self.session.select(token=i)

    def on_selection_changed(self, selection) -> None:
        if self.tz is None:
            return
        if not self._selection_is_input():
            self.chips.set_selected(-1)
            return
        i = selection.token
        self.chips.set_selected(i)
        if 0 <= i < self.tz.count:
            self.source.highlight(self.tz.starts[i], self.tz.ends[i], "#ffc9c9")
            self._select_for_neighbours(i)

    # --- embeddings, neighbours, projection --------------------------------------------
    def _show_embeddings(self) -> None:
        r = self.rows
        if r is None:
            return
        more = f" (the first {len(r.ids)} of {self.tz.count:,} tokens)" if self.tz and self.tz.count > len(r.ids) else ""
        dims = r.vectors.shape[1] if r.vectors.ndim == 2 else 0
        self.embed_note.setText(
            f"{len(r.ids)} tokens{more} x {dims} dimensions: each row is the token's vector in the input "
            f"embedding matrix; the bars are the rows' lengths (L2 norms).")
        self.embed_view.set_matrix(r.vectors, [f"{i}: {lab}" for i, lab in enumerate(r.labels)],
                                   signed=True, x_title="dimension", y_title="token", bar_values=r.norms)

    def _select_for_neighbours(self, i: int) -> None:
        if self.tz is None or not 0 <= i < self.tz.count:
            return
        token_id = self.tz.ids[i]
        ids = list(self.tz.ids[:EMBED_ROWS])

        def work(lm, job):
            from lab.core import embeddings

            groups = [embeddings.neighbours(lm, token_id, 10, embeddings.INPUT)]
            if not embeddings.tied(lm) and embeddings.has_output_embeddings(lm):
                groups.append(embeddings.neighbours(lm, token_id, 10, embeddings.OUTPUT))
            proj = embeddings.projection(lm, ids, per_token=3, max_tokens=30)
            return i, groups, proj

        self.session.request("tokens.neighbours", work, self._got_neighbours, self._failed,
                             label="nearest neighbours")

    def _got_neighbours(self, result) -> None:
        i, groups, proj = result
        self.neigh, self.proj = groups, proj
        tz = self.tz
        label = tz.label(i, True) if tz is not None and i < tz.count else groups[0].token_label
        self.neighbours_view.show_neighbours(i, label, groups)
        sel = -1
        if tz is not None and 0 <= i < tz.count and tz.ids[i] in proj.ids:
            sel = proj.ids.index(tz.ids[i])
        # The scatter's labels are the panel's costliest drawing: drawn when its tab is shown.
        self._proj_pending = (proj, sel)
        if self.current_view() == "projection":
            self._draw_projection()
        self.proj_note.setText(
            f"PCA of the input embeddings of {proj.kinds.count('prompt')} distinct prompt tokens (blue) and "
            f"their 3 nearest neighbours each (grey); the axes keep "
            f"{100 * float(proj.explained.sum()):.0f}% of the variance.")

    # --- positions -------------------------------------------------------------------------
    def request_positions(self) -> None:
        def work(lm, job):
            from lab.core import embeddings

            return embeddings.positional(lm, 64)

        self.session.request("tokens.positions", work, self._got_positions, self._failed, label="positions")

    def _got_positions(self, pos) -> None:
        self.positions = pos
        self.positions_view.show_positions(pos)

    # --- compare -------------------------------------------------------------------------
    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.tokens``: ``view`` (one of VIEWS) and ``compare`` (a model
        whose tokenizer is shown beside this one's, e.g. "zoo:bard-bert")."""
        if settings.get("view") in VIEWS:
            self.tabs.setCurrentIndex(VIEWS.index(settings["view"]))
        if settings.get("compare"):
            self.run_compare(str(settings["compare"]))

    def _browse_compare(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder (with its tokenizer)",
                                                lab_settings.last_folder())
        if path:
            self.compare_model.setCurrentText(path)
            self.run_compare()

    def run_compare(self, ref: Optional[str] = None) -> None:
        ref = (ref if isinstance(ref, str) else self.compare_model.currentText()).strip()
        if not ref:
            self.compare_counts.setText("Choose a second model (for example a zoo model) to compare tokenizers.")
            return
        if self.session.card is None:
            return
        self.compare_model.setCurrentText(ref)
        text = (self.session.prompt or "")[:COMPARE_CHARS]
        name_a = self.session.card.name
        cache = self._compare_tokenizers

        def work(lm, job):
            from lab.core import tokens

            if ref not in cache:
                cache.clear()
                cache[ref] = tokens.load_tokenizer(ref)
            tok_b, name_b = cache[ref]
            a = tokens.tokenize(lm.tokenizer, text, model=name_a)
            b = tokens.tokenize(tok_b, text, model=name_b)
            return tokens.compare(a, b)

        self.compare_counts.setText(f"Reading the tokenizer of {escape(ref)}…")
        self.session.request("tokens.compare", work, self._compared, self._compare_failed, label="comparing tokenizers")

    def _compare_failed(self, message: str) -> None:
        self.compare_counts.setText(f"<span style='color:{lab_theme.tone('error')}'>{escape(message)}</span>")

    def _compared(self, cmp) -> None:
        self.comparison = cmp
        self._show_comparison()

    def _show_comparison(self) -> None:
        cut = len(self.session.prompt or "") > COMPARE_CHARS
        self.compare_view.show_comparison(self.comparison, self.readable.isChecked(), COMPARE_CHARS if cut else 0)

    # --- context -----------------------------------------------------------------------------
    def bank_preset(self) -> None:
        self.context_view.use_preset()

    def run_context(self) -> None:
        if self.session.card is None:
            return
        a, wa, b, wb = self.context_view.inputs()

        def work(lm, job):
            from lab.core import embeddings

            return embeddings.context_similarity(lm, a, wa, b, wb, job=job)

        self.ctx_note.setText("Running both sentences…")
        self.session.request("tokens.context", work, self._got_context, self.context_view.show_error,
                             label="context similarity")

    def _got_context(self, cs) -> None:
        self.context_result = cs
        self.context_view.show_result(cs)

    def _draw_projection(self) -> None:
        if self._proj_pending is not None:
            proj, sel = self._proj_pending
            self._proj_pending = None
            self.proj_view.set_points(proj.coords, proj.labels, proj.kinds, proj.of, proj.explained, sel)

    def _tab_changed(self, index: int) -> None:
        if VIEWS[index] == "projection":
            self._draw_projection()
        if VIEWS[index] == "context" and self.context_result is None and self.session.card is not None:
            self.run_context()

    # --- export ---------------------------------------------------------------------------------
    def current_view(self) -> str:
        return VIEWS[self.tabs.currentIndex()]

    def view_widget(self, view: str) -> QWidget:
        if view == "projection":
            self._draw_projection()
        return {"tokens": self.chips, "compare": self.compare_table, "embeddings": self.embed_view,
                "neighbours": self.neighbours_view, "projection": self.proj_view,
                "positions": self.positions_view, "context": self.ctx_view}[view]

    def view_csv(self, view: str) -> str:
        from lab.core import embeddings

        if view == "tokens":
            return self.tz.csv_text() if self.tz is not None else ""
        if view == "compare":
            return self.comparison.csv_text() if self.comparison is not None else ""
        if view == "embeddings":
            return self.rows.csv_text() if self.rows is not None else ""
        if view == "neighbours":
            return embeddings.neighbours_csv(self.neigh) if self.neigh else ""
        if view == "projection":
            return self.proj.csv_text() if self.proj is not None else ""
        if view == "positions":
            if self.positions is None:
                return ""
            sim = "" if self.positions.kind == "relative" else "\n" + self.positions.csv_text("similarity")
            return self.positions.csv_text("matrix") + sim
        if view == "context":
            return self.context_result.csv_text() if self.context_result is not None else ""
        raise ValueError(view)

    def export_view_png(self, path, view: Optional[str] = None) -> bool:
        """Save a view (default: the one shown) as a PNG, atomically."""
        view = view or self.current_view()
        widget = self.view_widget(view)
        if view != "tokens" or self.chips.height() <= 8000:
            return save_view(widget, path, "png") is not None    # a plot: pyqtgraph's exporter
        pix = widget.grab(widget.rect().adjusted(0, 0, 0, 8000 - widget.height()))
        try:
            with atomic.replacing(path, suffix=".png") as tmp:
                if not pix.save(str(tmp), "PNG"):
                    raise OSError("Qt could not write the PNG")
        except OSError:
            return False
        return True

    def export_view_csv(self, path, view: Optional[str] = None) -> bool:
        """Save a view's data as CSV (UTF-8), atomically; False when there is nothing to save."""
        text = self.view_csv(view or self.current_view())
        if not text:
            return False
        atomic.write_bytes(path, text.encode("utf-8"))
        return True

    def _export_dialog(self, kind: str) -> None:
        view = self.current_view()
        name = f"tokens-{view}.{kind}"
        filt = "PNG image (*.png)" if kind == "png" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {view} as {kind.upper()}", name, filt)
        if not path:
            return
        try:
            ok = self.export_view_png(path) if kind == "png" else self.export_view_csv(path)
        except OSError as err:
            self._failed(f"Could not write {path}: {err.strerror or err}.")
            return
        if not ok:
            self._failed(f"Nothing to export in the {view} view yet." if kind == "csv" else f"Could not write {path}.")

    def selftest_ready(self) -> bool:
        return self.session.card is not None and self.tz is not None and self.rows is not None \
            and bool(self.neigh) and self.positions is not None
