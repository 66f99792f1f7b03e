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
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
                               QPushButton, QScrollArea, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from lab.core import atomic
from lab.ui.panels.base import Panel
from lab.ui.widgets.token_chips import MAX_CHIPS, SourceText, TokenChips
from lab.ui.widgets.token_plots import LayerLine, MatrixView, ScatterView

DEBOUNCE_MS = 60               # re-tokenise this long after the last keystroke
EMBED_ROWS = 512               # embedding heatmap rows (the first tokens)
COMPARE_CHARS = 20_000         # side-by-side view of the first characters of a long text
COMPARE_ROWS = 2_000
IDS_SHOWN = 5_000              # ids in the ids box (Copy ids copies every id)

VIEWS = ("tokens", "compare", "embeddings", "neighbours", "projection", "positions", "context")


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.NoEditTriggers)
    t.setSelectionBehavior(QTableWidget.SelectRows)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(False)
    if len(headers) > 1:
        t.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
    t.verticalHeader().setDefaultSectionSize(22)
    return t


def _note(text: str = "", color: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setTextFormat(Qt.RichText)        # callers escape() any user text
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
    if color:
        lab.setStyleSheet(f"color: {color};")
    return lab


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
        self._build_tokens_tab()
        self._build_compare_tab()
        self._build_embeddings_tab()
        self._build_neighbours_tab()
        self._build_projection_tab()
        self._build_positions_tab()
        self._build_context_tab()

        self.export_png_button = QPushButton("Export PNG…")
        self.export_png_button.setToolTip("Save the current view as a PNG image")
        self.export_png_button.clicked.connect(lambda: self._export_dialog("png"))
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.setToolTip("Save the data of the current view as CSV")
        self.export_csv_button.clicked.connect(lambda: self._export_dialog("csv"))
        self.error = _note(color="#d03030")
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
    def _build_tokens_tab(self) -> None:
        w = QWidget()
        self.counts = QLabel("No model loaded.")
        self.counts.setWordWrap(True)
        self.family = _note(color="#666666")
        self.context_bar = QProgressBar()
        self.context_bar.setTextVisible(True)
        self.context_bar.setMaximumHeight(18)
        self.context_warning = _note(color="#d03030")
        self.context_warning.hide()
        self.readable = QCheckBox("Readable spaces (␣ ↵ instead of Ġ ▁ ##)")
        self.readable.toggled.connect(self._set_readable)
        self.show_ids = QCheckBox("Ids on chips")
        self.show_ids.setChecked(True)
        self.show_ids.toggled.connect(lambda on: self.chips.set_show_ids(on))
        self.chips = TokenChips()
        self.chips.hovered.connect(self._hovered)
        self.chips.clicked.connect(self._clicked)
        self.chip_scroll = QScrollArea()
        self.chip_scroll.setWidgetResizable(True)
        self.chip_scroll.setWidget(self.chips)
        self.chip_scroll.setMinimumHeight(120)
        self.chips_note = _note(color="#c77700")
        self.chips_note.hide()
        self.source = SourceText()
        self.source.setMaximumHeight(110)
        self.ids_view = QPlainTextEdit()
        self.ids_view.setReadOnly(True)
        self.ids_view.setMaximumHeight(70)
        self.copy_ids = QPushButton("Copy ids")
        self.copy_ids.clicked.connect(self.copy_ids_to_clipboard)

        toggles = QHBoxLayout()
        toggles.addWidget(self.readable)
        toggles.addWidget(self.show_ids)
        toggles.addStretch(1)
        ids_row = QHBoxLayout()
        ids_row.addWidget(QLabel("Ids:"))
        ids_row.addStretch(1)
        ids_row.addWidget(self.copy_ids)
        self.source.setMaximumHeight(64)
        self.ids_view.setMaximumHeight(48)
        src_label = QLabel("Source text (hover a chip to see its characters):")
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.counts)
        lay.addWidget(self.context_bar)
        lay.addWidget(self.context_warning)
        lay.addLayout(toggles)
        lay.addWidget(self.family)
        lay.addWidget(self.chips_note)
        lay.addWidget(self.chip_scroll, 1)
        lay.addWidget(src_label)
        lay.addWidget(self.source)
        lay.addLayout(ids_row)
        lay.addWidget(self.ids_view)
        self.tabs.addTab(w, "Tokens")

    def _build_compare_tab(self) -> None:
        from lab.core import models

        w = QWidget()
        self.compare_model = QComboBox()
        self.compare_model.setEditable(True)
        self.compare_model.setMinimumContentsLength(14)
        for name in models.zoo_models():
            self.compare_model.addItem(f"zoo:{name}")
        self.compare_model.setCurrentText("")
        self.compare_model.lineEdit().setPlaceholderText("zoo:NAME or a model folder")
        self.compare_model.lineEdit().returnPressed.connect(self.run_compare)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.run_compare)
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._browse_compare)
        self.compare_counts = _note()
        self.compare_table = _table(["text", "model A", "model B"])
        self.compare_table.setWordWrap(False)
        hh = self.compare_table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.Stretch)
        row = QHBoxLayout()
        row.addWidget(QLabel("Second tokenizer:"))
        row.addWidget(self.compare_model, 1)
        row.addWidget(browse)
        row.addWidget(self.compare_button)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addLayout(row)
        lay.addWidget(self.compare_counts)
        lay.addWidget(self.compare_table, 1)
        lay.addWidget(_note("Rows in colour are cut differently by the two tokenizers; white rows are one "
                            "identical-span token each. Only the tokenizer of the second model is read.",
                            "#666666"))
        self.tabs.addTab(w, "Compare")

    def _build_embeddings_tab(self) -> None:
        w = QWidget()
        self.embed_note = _note(color="#666666")
        self.embed_view = MatrixView("input embedding rows", bars=True)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.embed_note)
        lay.addWidget(self.embed_view, 1)
        self.tabs.addTab(w, "Vectors")

    def _build_neighbours_tab(self) -> None:
        w = QWidget()
        self.neigh_title = _note("Click a token to see its nearest neighbours.")
        self.neigh_in = _table(["#", "token", "id", "cosine"])
        self.neigh_out = _table(["#", "token", "id", "cosine"])
        self.neigh_out_label = _note()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.neigh_title)
        lay.addWidget(QLabel("<b>Input embeddings</b> (what the model reads)"))
        lay.addWidget(self.neigh_in, 1)
        lay.addWidget(self.neigh_out_label)
        lay.addWidget(self.neigh_out, 1)
        lay.addWidget(_note("Cosine similarity of embedding rows over the whole vocabulary (top 10); "
                            "a random-init model gives random neighbours.", "#666666"))
        self.tabs.addTab(w, "Nearest")

    def _build_projection_tab(self) -> None:
        w = QWidget()
        self.proj_view = ScatterView()
        self.proj_note = _note(color="#666666")
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.proj_view, 1)
        lay.addWidget(self.proj_note)
        self.tabs.addTab(w, "PCA")

    def _build_positions_tab(self) -> None:
        w = QWidget()
        self.pos_note = _note()
        self.pos_source = _note(color="#666666")
        self.pos_view = MatrixView("position encoding")
        self.pos_sim_view = MatrixView("cosine similarity of positions")
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.pos_note)
        lay.addWidget(self.pos_view, 1)
        lay.addWidget(self.pos_sim_view, 1)
        lay.addWidget(self.pos_source)
        self.tabs.addTab(w, "Positions")

    def _build_context_tab(self) -> None:
        from lab.core.embeddings import BANK_PRESET

        w = QWidget()
        self.ctx_a = QLineEdit(BANK_PRESET[0])
        self.ctx_word_a = QLineEdit(BANK_PRESET[1])
        self.ctx_b = QLineEdit(BANK_PRESET[2])
        self.ctx_word_b = QLineEdit(BANK_PRESET[3])
        for e in (self.ctx_word_a, self.ctx_word_b):
            e.setMaximumWidth(90)
        for e in (self.ctx_a, self.ctx_b, self.ctx_word_a, self.ctx_word_b):
            e.returnPressed.connect(self.run_context)
        preset = QPushButton("Bank preset")
        preset.setToolTip("“I sat on the river bank” versus “I deposited cash at the bank”")
        preset.clicked.connect(self.bank_preset)
        self.ctx_run = QPushButton("Compare layers")
        self.ctx_run.clicked.connect(self.run_context)
        grid = QGridLayout()
        grid.addWidget(QLabel("Sentence A"), 0, 0)
        grid.addWidget(self.ctx_a, 0, 1)
        grid.addWidget(QLabel("word"), 0, 2)
        grid.addWidget(self.ctx_word_a, 0, 3)
        grid.addWidget(QLabel("Sentence B"), 1, 0)
        grid.addWidget(self.ctx_b, 1, 1)
        grid.addWidget(QLabel("word"), 1, 2)
        grid.addWidget(self.ctx_word_b, 1, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(preset)
        buttons.addStretch(1)
        buttons.addWidget(self.ctx_run)
        self.ctx_view = LayerLine()
        self.ctx_note = _note()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addLayout(grid)
        lay.addLayout(buttons)
        lay.addWidget(self.ctx_view, 1)
        lay.addWidget(self.ctx_note)
        self.tabs.addTab(w, "Context")

    # --- model and prompt --------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        self.error.hide()
        self.tz = None
        self.rows = None
        self.neigh = []
        self.proj = None
        self.positions = None
        self.context_result = None
        self.comparison = None
        self._tokenized_text = None
        self.compare_table.setRowCount(0)
        self.compare_counts.setText("")
        if card is None:
            return
        self.compare_table.setHorizontalHeaderLabels(["text", card.name, "model B"])
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
        tz = self.tz
        card = self.session.card
        n_text = sum(1 for s in tz.special if not s)
        n_special = tz.count - n_text
        extra = f" ({n_special} added by the tokenizer)" if n_special else ""
        self.counts.setText(
            f"<b>{tz.count:,}</b> tokens{extra} · <b>{tz.characters:,}</b> characters · "
            f"<b>{tz.chars_per_token:.2f}</b> characters per token")
        self.family.setText(escape(tz.info.describe()))
        ctx = card.context if card is not None else None
        if ctx:
            self.context_bar.setRange(0, ctx)
            self.context_bar.setValue(min(tz.count, ctx))
            self.context_bar.setFormat(f"{tz.count:,} / {ctx:,} positions ({100 * tz.count / ctx:.0f}%)")
            over = tz.count > ctx
            self.context_bar.setStyleSheet("QProgressBar::chunk { background: %s; }" % ("#d03030" if over else "#4c8bf5"))
            self.context_warning.setText(
                f"The prompt is {tz.count:,} tokens but {escape(card.name)} reads at most {ctx:,}: "
                f"the last {tz.count - ctx:,} would not fit (captures keep the first {ctx:,}).")
            self.context_warning.setVisible(over)
        else:
            self.context_bar.setRange(0, 1)
            self.context_bar.setValue(0)
            self.context_bar.setFormat(f"{tz.count:,} tokens · no fixed context window (relative positions)")
            self.context_bar.setStyleSheet("")
            self.context_warning.hide()
        self.chips.set_tokens(tz)
        self.chips.set_selected(self.session.selection.token if self._selection_is_input() else -1)
        if tz.count > MAX_CHIPS:
            self.chips_note.setText(f"Showing the first {MAX_CHIPS:,} of {tz.count:,} tokens as chips; "
                                    "the counts, ids and CSV cover them all.")
            self.chips_note.show()
        else:
            self.chips_note.setVisible(bool(tz.warnings))
            self.chips_note.setText(escape(" ".join(tz.warnings)))
        self.source.set_source(tz.text)
        shown = tz.ids[:IDS_SHOWN]
        lines = [", ".join(map(str, shown[k:k + 20])) for k in range(0, len(shown), 20)]
        more = f"\n… {tz.count - len(shown):,} more (Copy ids copies them all)" if tz.count > len(shown) else ""
        self.ids_view.setPlainText(",\n".join(lines) + more)

    def ids_text(self) -> str:
        return ", ".join(map(str, self.tz.ids)) if self.tz is not None else ""

    def copy_ids_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.ids_text())

    def _set_readable(self, on: bool) -> None:
        self.chips.set_readable(on)
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
        self.neigh_title.setText(f"Nearest neighbours of token {i}: <b>{escape(label)}</b> (id {groups[0].token_id})")
        self._fill_neighbours(self.neigh_in, groups[0])
        if len(groups) > 1:
            self.neigh_out_label.setText("<b>Output embeddings</b> (the untied output projection: what the model writes)")
            self._fill_neighbours(self.neigh_out, groups[1])
            self.neigh_out.show()
        else:
            self.neigh_out_label.setText("Output embeddings are tied to the input embeddings (the same matrix), "
                                         "so their neighbours are the same.")
            self.neigh_out.hide()
        sel = -1
        if tz is not None and 0 <= i < tz.count and tz.ids[i] in proj.ids:
            sel = proj.ids.index(tz.ids[i])
        self.proj_view.set_points(proj.coords, proj.labels, proj.kinds, proj.of, proj.explained, sel)
        self.proj_note.setText(
            f"PCA of the input embeddings of {proj.kinds.count('prompt')} distinct prompt tokens (blue) and "
            f"their 3 nearest neighbours each (grey); the axes keep "
            f"{100 * float(proj.explained.sum()):.0f}% of the variance.")

    @staticmethod
    def _fill_neighbours(table: QTableWidget, group) -> None:
        table.setRowCount(len(group.items))
        for r, n in enumerate(group.items):
            for c, v in enumerate([str(r + 1), n.label, str(n.id), f"{n.cosine:.3f}"]):
                item = QTableWidgetItem(v)
                if c != 1:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                table.setItem(r, c, item)

    # --- positions -------------------------------------------------------------------------
    def request_positions(self) -> None:
        def work(lm, job):
            from lab.core import embeddings

            return embeddings.positional(lm, 64)

        self.session.request("tokens.positions", work, self._got_positions, self._failed, label="positions")

    def _got_positions(self, pos) -> None:
        self.positions = pos
        titles = {"learned": "learned position table", "rope": "RoPE angles: cos | sin",
                  "sinusoidal": "sinusoidal encoding", "relative": "relative position bias"}
        self.pos_view.plot.setTitle(titles.get(pos.kind, pos.kind), size="9pt")
        rows = [str(i) for i in range(pos.matrix.shape[0])]
        self.pos_view.set_matrix(pos.matrix, rows, signed=True, x_title=pos.feature_label, y_title="position",
                                max_row_ticks=12)
        if pos.kind == "relative":
            self.pos_sim_view.hide()
        else:
            self.pos_sim_view.show()
            self.pos_sim_view.set_matrix(pos.similarity, rows, [str(i) for i in range(pos.similarity.shape[1])],
                                         signed=True, levels=(-1.0, 1.0), x_title="position", y_title="position",
                                         max_row_ticks=12)
        self.pos_note.setText(
            f"{escape(pos.note)} Without position information, “dog bites man” and “man bites dog” would be the "
            f"same bag of vectors.")
        self.pos_source.setText(f"Source: {escape(pos.source)}")

    # --- compare -------------------------------------------------------------------------
    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.tokens``: ``view`` (one of VIEWS) and ``compare`` (a model
        whose tokenizer is shown beside this one's, e.g. "zoo:bard-bert")."""
        if settings.get("view") in VIEWS:
            self.tabs.setCurrentIndex(VIEWS.index(settings["view"]))
        if settings.get("compare"):
            self.run_compare(str(settings["compare"]))

    def _browse_compare(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder (with its tokenizer)")
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
        self.compare_counts.setText(f"<span style='color:#d03030'>{escape(message)}</span>")

    def _compared(self, cmp) -> None:
        self.comparison = cmp
        self._show_comparison()

    def _show_comparison(self) -> None:
        cmp = self.comparison
        a, b = cmp.a, cmp.b
        readable = self.readable.isChecked()
        cut = len(self.session.prompt or "") > COMPARE_CHARS
        self.compare_counts.setText(
            f"<b>{escape(a.model)}</b>: {a.count:,} tokens ({a.info.family}) · "
            f"<b>{escape(b.model)}</b>: {b.count:,} tokens ({b.info.family}) · "
            f"{cmp.differing:,} of {len(cmp.spans):,} spans cut differently"
            + (f" (first {COMPARE_CHARS:,} characters)" if cut else ""))
        self.compare_table.setHorizontalHeaderLabels(["text", a.model, b.model])
        spans = cmp.spans[:COMPARE_ROWS]
        t = self.compare_table
        t.setUpdatesEnabled(False)
        t.setRowCount(len(spans))
        from PySide6.QtGui import QColor

        diff_bg = QColor("#fff1c9")
        for r, s in enumerate(spans):
            cells = [repr(a.text[s.start:s.end])[1:-1] or "(added)",
                     "  ".join(a.label(i, readable) for i in s.a),
                     "  ".join(b.label(i, readable) for i in s.b)]
            for c, v in enumerate(cells):
                item = QTableWidgetItem(v)
                if not s.same:
                    item.setBackground(diff_bg)
                    item.setForeground(QColor("#1b1b1b"))
                if c == 1:
                    item.setToolTip(" ".join(str(a.ids[i]) for i in s.a))
                elif c == 2:
                    item.setToolTip(" ".join(str(b.ids[i]) for i in s.b))
                t.setItem(r, c, item)
        t.setUpdatesEnabled(True)

    # --- context -----------------------------------------------------------------------------
    def bank_preset(self) -> None:
        from lab.core.embeddings import BANK_PRESET

        self.ctx_a.setText(BANK_PRESET[0])
        self.ctx_word_a.setText(BANK_PRESET[1])
        self.ctx_b.setText(BANK_PRESET[2])
        self.ctx_word_b.setText(BANK_PRESET[3])
        self.run_context()

    def run_context(self) -> None:
        if self.session.card is None:
            return
        a, wa, b, wb = (self.ctx_a.text(), self.ctx_word_a.text(), self.ctx_b.text(), self.ctx_word_b.text())

        def work(lm, job):
            from lab.core import embeddings

            return embeddings.context_similarity(lm, a, wa, b, wb or wa, job=job)

        self.ctx_note.setText("Running both sentences…")
        self.session.request("tokens.context", work, self._got_context, self._context_failed,
                             label="context similarity")

    def _context_failed(self, message: str) -> None:
        self.ctx_note.setText(f"<span style='color:#d03030'>{escape(message)}</span>")

    def _got_context(self, cs) -> None:
        self.context_result = cs
        self.ctx_view.set_values(cs.layers, cs.cosine, f"cosine of “{cs.word_a}” (A vs B)")
        last = float(cs.cosine[-1])
        self.ctx_note.setText(
            f"“{escape(cs.word_a)}” = {escape(' '.join(cs.tokens_a))} in A, {escape(' '.join(cs.tokens_b))} in B. "
            f"Cosine similarity of its hidden state: {float(cs.cosine[0]):.3f} at the embeddings, "
            f"{last:.3f} after the last layer. The lower it goes, the more the context has changed "
            f"the word's vector. {escape(cs.note)}")

    def _tab_changed(self, index: int) -> None:
        if VIEWS[index] == "context" and self.context_result is None and self.session.card is not None:
            self.run_context()

    # --- export ---------------------------------------------------------------------------------
    def current_view(self) -> str:
        return VIEWS[self.tabs.currentIndex()]

    def view_widget(self, view: str) -> QWidget:
        return {"tokens": self.chips, "compare": self.compare_table, "embeddings": self.embed_view,
                "neighbours": self.tabs.widget(VIEWS.index("neighbours")), "projection": self.proj_view,
                "positions": self.tabs.widget(VIEWS.index("positions")), "context": self.ctx_view}[view]

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
        if view == "tokens" and self.chips.height() > 8000:
            pix = widget.grab(widget.rect().adjusted(0, 0, 0, 8000 - widget.height()))
        else:
            pix = widget.grab()
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
