"""The objectives view: what each pre-training objective makes of the prompt, and how
surprised the loaded model is by each of its tokens.

Two painted widgets share one wrapping layout (``flow``): ``ExampleGrid`` draws an
example's aligned token rows in bands that fit the width (each band repeats the row
names), and ``SurprisalStrip`` draws the tokens as chips coloured by surprisal, with the
value under each; a click on a chip shows the model's top predictions for that place.
The view holds plain results (``lab.core.objectives.Report``) and imports no torch.
"""
from __future__ import annotations

import math
from html import escape
from typing import Optional

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from lab.ui.widgets.token_chips import SPECIAL_FILL
from lab.ui.widgets.token_views import note

UNITS = ("nats", "bits")
SCALE_NATS = 10.0          # surprisal at which a chip is fully red (p = e^-10 ≈ 0.00005)
MAX_LABEL = 18
INK, LIGHT_INK = QColor("#1b1b1b"), QColor("#ffffff")
ROLE_FILLS = {"": "#e6ebf2", "special": SPECIAL_FILL, "chosen": "#ffe08a", "label": "#ffe08a",
              "mask": "#ffa94d", "random": "#d0a6ff", "keep": "#a6e0a8", "sentinel": "#8fbcff", "noise": "#ffc2c2"}
ROLE_NAMES = {"mask": "replaced by the mask (80 %)", "random": "a random token (10 %)",
              "keep": "kept as it was (10 %)", "label": "what the loss asks for", "sentinel": "sentinel",
              "noise": "corrupted span", "special": "special token"}
KIND_STORY = {
    "decoder-only": "{m} is a <b>decoder</b>: it learned by predicting the next token (causal LM), so its own "
               "loss scores each token from the tokens before it.",
    "encoder-only": "{m} is an <b>encoder</b>: it learned by predicting hidden tokens (masked LM), so its own loss "
               "masks each token in turn and scores it from both sides (pseudo-log-likelihood).",
    "encoder-decoder": "{m} is an <b>encoder-decoder</b>: it reads an input and writes an output, so its own "
                       "loss scores each output token given the input (T5-style models pre-train on span "
                       "corruption; dates-t5 was trained directly on its task).",
}


def flow(widths: list[int], avail: int, gap: int, start: int = 0) -> list[tuple[int, int]]:
    """(x, line) of each item laid left to right from ``start``, wrapping at ``avail``."""
    out, x, line = [], start, 0
    for w in widths:
        if x > start and x + w > avail:
            x, line = start, line + 1
        out.append((x, line))
        x += w + gap
    return out


def surprisal_fill(nats: Optional[float]) -> QColor:
    """White (certain) to deep red (SCALE_NATS or more); grey where nothing is predicted."""
    if nats is None or not math.isfinite(nats):
        return QColor("#c8ccd2")
    t = max(0.0, min(1.0, nats / SCALE_NATS)) ** 0.8
    return QColor.fromRgbF(1.0, 1.0 - 0.82 * t, 1.0 - 0.86 * t)


def probability(p: float) -> str:
    """A probability that never rounds a near-certainty to 1 or a tiny one to 0."""
    if p < 1e-3:
        return f"{p:.2e}"
    return f"{p:.6f}" if p > 0.999 else f"{p:.3f}"


def _short(s: str) -> str:
    return s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…"


class _Painted(QWidget):
    """Shared size handling: the height follows the width (wrapping)."""

    PAD, GAP = 4, 3

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self._fm = QFontMetrics(self.font())
        self._laid = -1
        self._height = 24

    def relayout(self) -> None:
        self._laid = -1
        self._layout(max(self.width(), 160))
        self.setFixedHeight(self._height)
        self.update()

    def resizeEvent(self, e) -> None:
        if e.size().width() != self._laid:
            self._layout(max(e.size().width(), 160))
            self.setFixedHeight(self._height)
        super().resizeEvent(e)

    def sizeHint(self) -> QSize:
        return QSize(400, self._height)

    def _layout(self, width: int) -> None:
        raise NotImplementedError

    def _cell(self, p: QPainter, rect: QRect, text: str, fill: Optional[QColor], pen: Optional[QPen] = None) -> None:
        if fill is not None:
            p.setPen(pen or QPen(fill.darker(130), 1))
            p.setBrush(fill)
            p.drawRoundedRect(rect, 3, 3)
            p.setPen(LIGHT_INK if fill.lightness() < 110 else INK)
        else:
            p.setPen(self.palette().placeholderText().color())
        p.drawText(rect, Qt.AlignCenter, _short(text))


class ExampleGrid(_Painted):
    """An example's rows, column-aligned, wrapped into bands that fit the width."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.example = None
        self._cols: list[tuple[int, int, int]] = []    # (x, band, width) per column
        self._name_w = 0

    def set_example(self, example) -> None:
        self.example = example
        self.relayout()

    def _layout(self, width: int) -> None:
        self._laid = width
        ex = self.example
        if ex is None:
            self._cols, self._height = [], 8
            return
        fm = self._fm
        self._name_w = max(fm.horizontalAdvance(r.name) for r in ex.rows) + 10
        widths = [max(fm.horizontalAdvance(_short(r.cells[c].text or "·")) if c < len(r.cells) else 0
                      for r in ex.rows) + 2 * self.PAD for c in range(ex.columns)]
        places = flow(widths, width - 2, self.GAP, self._name_w)
        self._cols = [(x, band, w) for (x, band), w in zip(places, widths)]
        bands = (places[-1][1] + 1) if places else 1
        self._height = bands * self._band_h() - 4

    def _row_h(self) -> int:
        return self._fm.height() + 6

    def _band_h(self) -> int:
        return len(self.example.rows) * (self._row_h() + 2) + 6

    def paintEvent(self, e) -> None:
        ex = self.example
        if ex is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        rh, bh = self._row_h(), self._band_h()
        text_pen = self.palette().windowText().color()
        bands = {b for _, b, _ in self._cols} or {0}
        for band in bands:
            for r, row in enumerate(ex.rows):
                y = band * bh + r * (rh + 2)
                p.setPen(text_pen)
                p.drawText(QRect(0, y, self._name_w - 6, rh), Qt.AlignRight | Qt.AlignVCenter, row.name)
        for c, (x, band, w) in enumerate(self._cols):
            for r, row in enumerate(ex.rows):
                if c >= len(row.cells):
                    continue
                cell = row.cells[c]
                rect = QRect(x, band * bh + r * (rh + 2), w, rh)
                if cell.role == "gap":
                    continue
                if cell.role == "ignored":
                    self._cell(p, rect, "·", None)
                    continue
                fill = QColor(ROLE_FILLS.get(cell.role, ROLE_FILLS[""]))
                pen = QPen(QColor("#b8860b"), 2) if cell.role == "chosen" else None
                self._cell(p, rect, cell.text, fill, pen)
        p.end()


class SurprisalStrip(_Painted):
    """Token chips coloured by surprisal with the value below; click one to select it."""

    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tokens: tuple = ()
        self.unit = "nats"
        self.selected = -1
        self._rects: list[QRect] = []
        self.setCursor(Qt.PointingHandCursor)

    def set_tokens(self, tokens, unit: str) -> None:
        self.tokens, self.unit = tuple(tokens), unit
        if self.selected >= len(self.tokens):
            self.selected = -1
        self.relayout()

    def set_selected(self, index: int) -> None:
        self.selected = index
        self.update()

    def _value(self, t) -> str:
        v = t.bits if self.unit == "bits" else t.nats
        return "—" if v is None else f"{v:.2f}"

    def _layout(self, width: int) -> None:
        self._laid = width
        fm = self._fm
        widths = [max(fm.horizontalAdvance(_short(t.text)), fm.horizontalAdvance(self._value(t))) + 2 * self.PAD + 2
                  for t in self.tokens]
        h = 2 * fm.height() + 6
        places = flow(widths, width - 2, self.GAP, 2)
        self._rects = [QRect(x, 2 + line * (h + 5), w, h) for (x, line), w in zip(places, widths)]
        self._height = (self._rects[-1].bottom() + 4) if self._rects else 8

    def paintEvent(self, e) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fm_h = self._fm.height()
        for i, (t, rect) in enumerate(zip(self.tokens, self._rects)):
            fill = surprisal_fill(t.nats)
            pen = QPen(QColor("#1f6fe0"), 2.5) if i == self.selected else QPen(fill.darker(140), 1)
            p.setPen(pen)
            p.setBrush(fill)
            p.drawRoundedRect(rect, 3, 3)
            ink = LIGHT_INK if fill.lightness() < 120 else INK
            p.setPen(ink)
            top = QRect(rect.x(), rect.y() + 2, rect.width(), fm_h)
            bottom = QRect(rect.x(), rect.y() + 3 + fm_h, rect.width(), fm_h)
            p.drawText(top, Qt.AlignCenter, _short(t.text))
            p.setPen(ink)
            p.drawText(bottom, Qt.AlignCenter, self._value(t))
        p.end()

    def index_at(self, pos) -> int:
        return next((i for i, r in enumerate(self._rects) if r.contains(pos)), -1)

    def mousePressEvent(self, e) -> None:
        i = self.index_at(e.position().toPoint())
        if i >= 0:
            self.set_selected(i)
            self.clicked.emit(i)
        super().mousePressEvent(e)


class ObjectivesView(QWidget):
    """Controls, the loss strip with its figures and predictions, then the three examples."""

    seed_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.story = note()
        self.seed = QSpinBox(objectName="objectives-seed", minimum=0, maximum=1_000_000)
        self.seed.setToolTip("Seed of the masked-LM and span-corruption draws: the same seed gives the same example")
        self.new_draw = QPushButton("New draw", objectName="objectives-new-draw")
        self.new_draw.setToolTip("Draw another masked-LM and span-corruption example (the next seed)")
        self.unit = QComboBox(objectName="objectives-unit")
        self.unit.addItems(UNITS)
        self.unit.setToolTip("Surprisal -log p in nats (natural log) or bits (log base 2)")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Seed"))
        controls.addWidget(self.seed)
        controls.addWidget(self.new_draw)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Surprisal in"))
        controls.addWidget(self.unit)
        controls.addStretch(1)

        self.loss_title = note()
        self.source = note()
        self.strip = SurprisalStrip()
        self.strip.setObjectName("objectives-strip")
        self.scale = note(tone="muted")
        self.predictions = note()
        self.predictions.setObjectName("objectives-predictions")
        self.notes = note(tone="warn")
        self.grids, self.titles, self.ex_notes = [], [], []
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(4, 4, 4, 4)
        for w in (self.story, self.loss_title, self.source, self.strip, self.scale, self.predictions, self.notes):
            lay.addWidget(w)
        for _ in range(3):
            title, grid, ex_note = note(), ExampleGrid(), note(tone="muted")
            self.titles.append(title)
            self.grids.append(grid)
            self.ex_notes.append(ex_note)
            lay.addSpacing(6)
            for w in (title, grid, ex_note):
                lay.addWidget(w)
        self.legend = note(tone="muted")
        self.legend.setText("Colours: " + ", ".join(
            f"<span style='background:{ROLE_FILLS[r]}; color:{'#fff' if r == 'special' else '#1b1b1b'}'>"
            f"&nbsp;{escape(n)}&nbsp;</span>" for r, n in ROLE_NAMES.items()))
        lay.addWidget(self.legend)
        lay.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(controls)
        outer.addWidget(self.scroll, 1)

        self.seed.valueChanged.connect(self.seed_changed)
        self.new_draw.clicked.connect(lambda: self.seed.setValue(self.seed.value() + 1))
        self.unit.currentTextChanged.connect(self._unit_changed)
        self.strip.clicked.connect(self.select_token)
        self.clear("Load a model and type a prompt: its training examples and the model's loss appear here.")

    # --- results ----------------------------------------------------------------------
    def clear(self, message: str = "") -> None:
        self.report = None
        self.story.setText(escape(message))
        for w in (self.loss_title, self.source, self.scale, self.predictions, self.notes):
            w.setText("")
        self.strip.set_tokens((), self.unit.currentText())
        for title, grid, ex_note in zip(self.titles, self.grids, self.ex_notes):
            title.setText("")
            grid.set_example(None)
            ex_note.setText("")

    def show_report(self, rep) -> None:
        self.report = rep
        self.story.setText(KIND_STORY.get(rep.kind, "{m}").format(m=escape(rep.model)))
        strip = rep.loss
        if rep.target_source:
            how = "the model's own greedy output" if rep.target_source == "greedy" else "the target you typed"
            shown = escape(rep.target) if rep.target else "no text, only " + escape(" ".join(t.text for t in strip.tokens))
            self.source.setText(f"Input: <b>{escape(rep.text)}</b> &nbsp;→&nbsp; scored output: "
                                f"<b>{shown}</b> ({how})")
        else:
            self.source.setText("")
        self.notes.setText("<br>".join(escape(n) for n in rep.notes))
        for (title, grid, ex_note), example in zip(zip(self.titles, self.grids, self.ex_notes), rep.examples):
            own = " &nbsp;<i>← how this kind of model is trained</i>" if example.objective == rep.own_objective else ""
            title.setText(f"<b>{escape(example.title)}</b>{own}")
            grid.set_example(example)
            ex_note.setText(" ".join(escape(n) for n in example.notes) + self._stats(example))
        self._show_strip()
        scored = strip.scored
        worst = max(range(len(strip.tokens)), key=lambda i: strip.tokens[i].nats or -1.0) if scored else -1
        self.select_token(worst)

    @staticmethod
    def _stats(example) -> str:
        s = example.stats
        if example.objective == "masked":
            return (f" Seed {s['seed']}: {s['chosen']} of {s['candidates']} tokens chosen "
                    f"({s['mask']} masked, {s['random']} random, {s['keep']} kept).")
        if example.objective == "span":
            return (f" Seed {s['seed']}: {s['noise_tokens']} of {s['text_tokens']} tokens in {s['spans']} "
                    f"span(s) (density {s['density']:.2f}, mean span {s['mean_span']:.1f}).")
        return ""

    def _show_strip(self) -> None:
        rep = self.report
        if rep is None:
            return
        strip, unit = rep.loss, self.unit.currentText()
        mean = strip.mean_bits if unit == "bits" else strip.mean_nats
        self.loss_title.setText(
            f"<b>The model's own loss</b>, per token ({escape(strip.description)}): mean "
            f"<b>{mean:.3f} {unit}</b> per token over {len(strip.scored)} tokens, perplexity "
            f"<b>{strip.perplexity:,.2f}</b>")
        self.strip.set_tokens(strip.tokens, unit)
        top = SCALE_NATS if unit == "nats" else SCALE_NATS / math.log(2)
        self.scale.setText(f"White: the model was sure (surprisal 0); deep red: {top:.0f} {unit} or more "
                           f"(p ≤ {math.exp(-SCALE_NATS):.0e}); grey: nothing predicts this token. "
                           "Click a token for the model's top predictions there.")

    def _unit_changed(self, unit: str) -> None:
        self._show_strip()
        self.select_token(self.strip.selected)

    def select_token(self, index: int) -> None:
        rep = self.report
        if rep is None or not 0 <= index < len(rep.loss.tokens):
            self.predictions.setText("")
            return
        self.strip.set_selected(index)
        t = rep.loss.tokens[index]
        unit = self.unit.currentText()
        if t.nats is None:
            self.predictions.setText(f"Token {index} <b>{escape(t.text)}</b>: not scored "
                                     f"({escape(rep.loss.unscored_reason)}).")
            return
        value = t.bits if unit == "bits" else t.nats
        rows = "".join(
            f"<tr><td>{k + 1}.</td><td><b>{escape(s)}</b></td><td align='right'>&nbsp;{probability(p)}</td></tr>"
            for k, (s, p) in enumerate(t.top))
        self.predictions.setText(
            f"Token {index} <b>{escape(t.text)}</b>: p = {probability(t.probability)}, surprisal {value:.3f} {unit}, "
            f"rank {t.rank} among the model's predictions. Top predictions here:"
            f"<table cellspacing='0' cellpadding='2'>{rows}</table>")
