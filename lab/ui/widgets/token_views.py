"""The views of the Tokens & embeddings panel: each tab's widgets, and how each shows the
lab.core result it is given (a Tokenization, a Comparison, neighbours, positions, a
context similarity). They know no panel: the panel asks the worker and hands results over.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lab.ui import theme as lab_theme
from lab.ui.widgets.control_names import name_buttons
from lab.ui.widgets.token_chips import MAX_CHIPS, SourceText, TokenChips
from lab.ui.widgets.token_plots import LayerLine, MatrixView

IDS_SHOWN = 5_000              # ids in the ids box (Copy ids copies every id)
COMPARE_ROWS = 2_000           # rows of the side-by-side view


def table(headers: list[str]) -> QTableWidget:
    """A read-only table, whole rows selected, the second column stretched."""
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


def note(text: str = "", tone: str = "") -> QLabel:
    """A wrapped rich-text label (callers escape() any user text), coloured with a theme
    tone ("muted", "warn", "error"...)."""
    lab = QLabel(text)
    lab.setTextFormat(Qt.RichText)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextSelectableByMouse)
    if tone:
        lab_theme.tint(lab, tone)
    return lab


def _page() -> tuple[QWidget, QVBoxLayout]:
    w = QWidget()
    lay = QVBoxLayout(w)
    lay.setContentsMargins(2, 4, 2, 2)
    return w, lay


class TokensView(QWidget):
    """Token chips with counts, the context-window bar, the source text and the raw ids."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts = QLabel("No model loaded.")
        self.counts.setWordWrap(True)
        self.family = note(tone="muted")
        self.context_bar = QProgressBar()
        self.context_bar.setTextVisible(True)
        self.context_bar.setMaximumHeight(18)
        self.context_warning = note(tone="error")
        self.context_warning.hide()
        self.readable = QCheckBox("Readable spaces (␣ ↵ instead of Ġ ▁ ##)")
        self.show_ids = QCheckBox("Ids on chips")
        self.show_ids.setChecked(True)
        self.chips = TokenChips()
        self.readable.toggled.connect(self.chips.set_readable)
        self.show_ids.toggled.connect(self.chips.set_show_ids)
        self.chip_scroll = QScrollArea()
        self.chip_scroll.setWidgetResizable(True)
        self.chip_scroll.setWidget(self.chips)
        self.chip_scroll.setMinimumHeight(120)
        self.chips_note = note(tone="warn")
        self.chips_note.hide()
        self.source = SourceText()
        self.source.setMaximumHeight(64)
        self.ids_view = QPlainTextEdit()
        self.ids_view.setReadOnly(True)
        self.ids_view.setMaximumHeight(48)
        self.copy_ids = QPushButton("Copy ids")

        toggles = QHBoxLayout()
        toggles.addWidget(self.readable)
        toggles.addWidget(self.show_ids)
        toggles.addStretch(1)
        ids_row = QHBoxLayout()
        ids_row.addWidget(QLabel("Ids:"))
        ids_row.addStretch(1)
        ids_row.addWidget(self.copy_ids)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.counts)
        lay.addWidget(self.context_bar)
        lay.addWidget(self.context_warning)
        lay.addLayout(toggles)
        lay.addWidget(self.family)
        lay.addWidget(self.chips_note)
        lay.addWidget(self.chip_scroll, 1)
        lay.addWidget(QLabel("Source text (hover a chip to see its characters):"))
        lay.addWidget(self.source)
        lay.addLayout(ids_row)
        lay.addWidget(self.ids_view)

    def show_tokens(self, tz, model_name: str, context, selected: int) -> None:
        """``tz``: a lab.core.tokens Tokenization; ``context``: the model's window (None: none)."""
        n_text = sum(1 for s in tz.special if not s)
        n_special = tz.count - n_text
        extra = f" ({n_special} added by the tokenizer)" if n_special else ""
        self.counts.setText(
            f"<b>{tz.count:,}</b> tokens{extra} · <b>{tz.characters:,}</b> characters · "
            f"<b>{tz.chars_per_token:.2f}</b> characters per token · <b>{tz.words:,}</b> words · "
            f"<b>{tz.tokens_per_word:.2f}</b> tokens per word")
        self.family.setText(escape(tz.info.describe()))
        if context:
            self.context_bar.setRange(0, context)
            self.context_bar.setValue(min(tz.count, context))
            self.context_bar.setFormat(f"{tz.count:,} / {context:,} positions ({100 * tz.count / context:.0f}%)")
            over = tz.count > context
            self.context_bar.setStyleSheet("QProgressBar::chunk { background: %s; }" % ("#d03030" if over else "#4c8bf5"))
            self.context_warning.setText(
                f"The prompt is {tz.count:,} tokens but {escape(model_name)} reads at most {context:,}: "
                f"the last {tz.count - context:,} would not fit (captures keep the first {context:,}).")
            self.context_warning.setVisible(over)
        else:
            self.context_bar.setRange(0, 1)
            self.context_bar.setValue(0)
            self.context_bar.setFormat(f"{tz.count:,} tokens · no fixed context window (relative positions)")
            self.context_bar.setStyleSheet("")
            self.context_warning.hide()
        self.chips.set_tokens(tz)
        self.chips.set_selected(selected)
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


class CompareView(QWidget):
    """Two tokenizers side by side: one row per span of text, coloured where they differ."""

    compare_requested = Signal()   # Compare, or Return in the model box
    browse_requested = Signal()    # Folder…

    def __init__(self, zoo_refs: list[str], parent=None):
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setMinimumContentsLength(14)
        self.model.addItems(zoo_refs)
        self.model.setCurrentText("")
        self.model.lineEdit().setPlaceholderText("zoo:NAME or a model folder")
        self.model.lineEdit().returnPressed.connect(self.compare_requested)
        self.model.activated.connect(lambda _i: self.compare_requested.emit())   # a pick compares at once
        self.button = QPushButton("Compare")
        self.button.clicked.connect(self.compare_requested)
        browse = QPushButton("Folder…")
        browse.clicked.connect(self.browse_requested)
        self.counts = note()
        self.table = table(["text", "model A", "model B"])
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.Stretch)
        row = QHBoxLayout()
        row.addWidget(QLabel("Second tokenizer:"))
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        row.addWidget(self.button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addLayout(row)
        lay.addWidget(self.counts)
        lay.addWidget(self.table, 1)
        lay.addWidget(note("Rows in colour are cut differently by the two tokenizers; white rows are one "
                           "identical-span token each. Only the tokenizer of the second model is read.",
                           "muted"))

    def clear(self, model_name: str = "model A") -> None:
        self.table.setRowCount(0)
        self.counts.setText("")
        self.table.setHorizontalHeaderLabels(["text", model_name, "model B"])

    def show_comparison(self, cmp, readable: bool, cut_at: int = 0) -> None:
        """``cmp``: a lab.core.tokens comparison; ``cut_at``: the characters compared, when
        the text was longer (0: all of it)."""
        a, b = cmp.a, cmp.b
        self.counts.setText(
            f"<b>{escape(a.model)}</b>: {a.count:,} tokens ({a.info.family}) · "
            f"<b>{escape(b.model)}</b>: {b.count:,} tokens ({b.info.family}) · "
            f"{cmp.differing:,} of {len(cmp.spans):,} spans cut differently"
            + (f" (first {cut_at:,} characters)" if cut_at else ""))
        self.table.setHorizontalHeaderLabels(["text", a.model, b.model])
        spans = cmp.spans[:COMPARE_ROWS]
        t = self.table
        t.setUpdatesEnabled(False)
        t.setRowCount(len(spans))
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


class NeighboursView(QWidget):
    """Nearest neighbours of one token in the input (and untied output) embeddings."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = note("Click a token to see its nearest neighbours.")
        self.inputs = table(["#", "token", "id", "cosine"])
        self.outputs = table(["#", "token", "id", "cosine"])
        self.outputs_label = note()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(QLabel("<b>Input embeddings</b> (what the model reads)"))
        lay.addWidget(self.inputs, 1)
        lay.addWidget(self.outputs_label)
        lay.addWidget(self.outputs, 1)
        lay.addWidget(note("Cosine similarity of embedding rows over the whole vocabulary (top 10); "
                           "a random-init model gives random neighbours.", "muted"))

    def show_neighbours(self, i: int, label: str, groups: list) -> None:
        """``groups``: the input neighbours, then the output ones when the embeddings are untied."""
        self.title.setText(f"Nearest neighbours of token {i}: <b>{escape(label)}</b> (id {groups[0].token_id})")
        self._fill(self.inputs, groups[0])
        if len(groups) > 1:
            self.outputs_label.setText("<b>Output embeddings</b> (the untied output projection: what the model writes)")
            self._fill(self.outputs, groups[1])
            self.outputs.show()
        else:
            self.outputs_label.setText("Output embeddings are tied to the input embeddings (the same matrix), "
                                       "so their neighbours are the same.")
            self.outputs.hide()

    @staticmethod
    def _fill(t: QTableWidget, group) -> None:
        t.setRowCount(len(group.items))
        for r, n in enumerate(group.items):
            for c, v in enumerate([str(r + 1), n.label, str(n.id), f"{n.cosine:.3f}"]):
                item = QTableWidgetItem(v)
                if c != 1:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                t.setItem(r, c, item)


class PositionsView(QWidget):
    """The position encoding (learned, RoPE, sinusoidal or relative) and position similarity."""

    TITLES = {"learned": "learned position table", "rope": "RoPE angles: cos | sin",
              "sinusoidal": "sinusoidal encoding", "relative": "relative position bias"}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.note = note()
        self.source = note(tone="muted")
        self.matrix = MatrixView("position encoding")
        self.similarity = MatrixView("cosine similarity of positions")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addWidget(self.note)
        lay.addWidget(self.matrix, 1)
        lay.addWidget(self.similarity, 1)
        lay.addWidget(self.source)

    def show_positions(self, pos) -> None:
        """``pos``: a lab.core.embeddings positional-encoding result."""
        self.matrix.plot.setTitle(self.TITLES.get(pos.kind, pos.kind), size=lab_theme.title_size())
        rows = [str(i) for i in range(pos.matrix.shape[0])]
        self.matrix.set_matrix(pos.matrix, rows, signed=True, x_title=pos.feature_label, y_title="position",
                               max_row_ticks=12)
        if pos.kind == "relative":
            self.similarity.hide()
        else:
            self.similarity.show()
            self.similarity.set_matrix(pos.similarity, rows, [str(i) for i in range(pos.similarity.shape[1])],
                                       signed=True, levels=(-1.0, 1.0), x_title="position", y_title="position",
                                       max_row_ticks=12)
        self.note.setText(
            f"{escape(pos.note)} Without position information, “dog bites man” and “man bites dog” would be the "
            f"same bag of vectors.")
        self.source.setText(f"Source: {escape(pos.source)}")


class ContextView(QWidget):
    """"Context changes meaning": one word in two sentences, its vectors compared layer by layer."""

    run_requested = Signal()

    def __init__(self, preset: tuple[str, str, str, str], parent=None):
        super().__init__(parent)
        self.preset = preset
        self.a, self.word_a, self.b, self.word_b = (QLineEdit(t) for t in preset)
        for e in (self.word_a, self.word_b):
            e.setMaximumWidth(90)
        for e in (self.a, self.b, self.word_a, self.word_b):
            e.returnPressed.connect(self.run_requested)
        preset_button = QPushButton("Bank preset")
        preset_button.setToolTip("“I sat on the river bank” versus “I deposited cash at the bank”")
        preset_button.clicked.connect(self.use_preset)
        self.run = QPushButton("Compare layers")
        name_buttons(preset_button, self.run)
        self.run.clicked.connect(self.run_requested)
        self.token_only = QCheckBox("Layer 0: token embedding only")
        self.token_only.setToolTip("Compare the two token embedding rows at layer 0, without the position "
                                   "the model adds to them: identical words then start at exactly 1")
        self.token_only.toggled.connect(self._render)
        self.result = None
        grid = QGridLayout()
        for r, (label, sentence, word) in enumerate((("Sentence A", self.a, self.word_a),
                                                     ("Sentence B", self.b, self.word_b))):
            grid.addWidget(QLabel(label), r, 0)
            grid.addWidget(sentence, r, 1)
            grid.addWidget(QLabel("word"), r, 2)
            grid.addWidget(word, r, 3)
        buttons = QHBoxLayout()
        buttons.addWidget(preset_button)
        buttons.addWidget(self.token_only)
        buttons.addStretch(1)
        buttons.addWidget(self.run)
        self.plot = LayerLine()
        self.note = note()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 4, 2, 2)
        lay.addLayout(grid)
        lay.addLayout(buttons)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.note)

    def inputs(self) -> tuple[str, str, str, str]:
        """(sentence A, word A, sentence B, word B; the word of B defaults to A's)."""
        return self.a.text(), self.word_a.text(), self.b.text(), self.word_b.text() or self.word_a.text()

    def use_preset(self) -> None:
        for e, t in zip((self.a, self.word_a, self.b, self.word_b), self.preset):
            e.setText(t)
        self.run_requested.emit()

    def show_error(self, message: str) -> None:
        self.note.setText(f"<span style='color:{lab_theme.tone('error')}'>{escape(message)}</span>")

    def show_result(self, cs) -> None:
        """``cs``: a lab.core.embeddings context-similarity result."""
        self.result = cs
        self._render()

    def _render(self, *_) -> None:
        cs = self.result
        if cs is None:
            return
        token_only = self.token_only.isChecked()
        values = cs.cosine.copy()
        layers = list(cs.layers)
        if token_only:
            values[0] = cs.token_cosine
            layers[0] = "token"
        self.plot.set_values(layers, values, f"cosine of “{cs.word_a}” (A vs B)")
        start = ("the token embedding rows alone" if token_only else cs.layer0)
        self.note.setText(
            f"“{escape(cs.word_a)}” = {escape(' '.join(cs.tokens_a))} in A, {escape(' '.join(cs.tokens_b))} in B. "
            f"Each point is the cosine similarity of the word's vector in A and in B: at layer 0 "
            f"{escape(start, quote=False)} ({float(values[0]):.3f}); at layer k the hidden state after k layers, which has "
            f"read the rest of its sentence and its position ({float(values[-1]):.3f} after the last layer). "
            f"Below the layer-0 value, the difference comes from the context. {escape(cs.note)}")


def page(*widgets_and_stretch) -> QWidget:
    """A tab page of (widget, stretch) pairs."""
    w, lay = _page()
    for widget, stretch in widgets_and_stretch:
        lay.addWidget(widget, stretch)
    return w
