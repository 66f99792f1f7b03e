"""The Intervene tab: ablate heads or blocks, sweep every head, patch activations.

Three pages. Each collects plain values and emits ``run(op, args)``; the attention panel
sends them to the InterventionController on the worker and hands the result back to
``show_ablation`` / ``show_sweep`` / ``show_patch``. The views are signed heatmaps
(blue below zero, red above) with layers down and heads or tokens across.
"""
from __future__ import annotations

from html import escape
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGraphicsRectItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lab.core.trace import display_token
from lab.ui import theme as lab_theme
from lab.ui.widgets.heatmap import Heatmap

OPS = ("ablate", "sweep", "patch")


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    return label


class DeltaHeatmap(Heatmap):
    """A signed map: blue below zero, white at zero, red above; levels symmetric about zero.
    Cells in ``mark`` get an outline (the heads chosen for ablation)."""

    def __init__(self, parent=None, *, value_name: str, row_name: str, col_name: str):
        super().__init__(parent, levels=(-1.0, 1.0), value_name=value_name, row_name=row_name, col_name=col_name)
        cmap = pg.ColorMap([0.0, 0.5, 1.0], [(33, 102, 172), (255, 255, 255), (178, 24, 43)])
        self.lut = cmap.getLookupTable(nPts=256)
        self.image.setLookupTable(self.lut)
        self.colorbar.setColorMap(cmap)
        self._marks: list[QGraphicsRectItem] = []

    def set_values(self, matrix: np.ndarray, rows, cols, limit: Optional[float] = None) -> None:
        finite = np.abs(matrix[np.isfinite(matrix)])
        lim = float(limit if limit is not None else (finite.max() if finite.size else 1.0)) or 1.0
        self.levels = (-lim, lim)
        self.colorbar.setLevels(self.levels)
        self.set_matrix(matrix, rows, cols)

    def mark(self, cells) -> None:
        for item in self._marks:
            self.plot.removeItem(item)
        self._marks = []
        for r, c in cells:
            item = QGraphicsRectItem(QRectF(c, r, 1, 1))
            item.setPen(pg.mkPen(lab_theme.tone("ink"), width=2, cosmetic=True))
            item.setZValue(11)
            self.plot.addItem(item)
            self._marks.append(item)

    def _idle_text(self) -> str:
        return "Hover over a cell to read its value." if self.matrix is not None else " "


class _RunRow(QWidget):
    """A Run button, a Cancel button and a progress bar."""

    def __init__(self, label: str, parent=None):
        super().__init__(parent)
        self.button = QPushButton(label)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button)
        lay.addWidget(self.cancel)
        lay.addWidget(self.bar, 1)

    def busy(self, on: bool) -> None:
        self.button.setEnabled(not on)
        self.cancel.setEnabled(on)
        if on:
            self.bar.setValue(0)
            self.bar.setFormat("starting…")

    def progress(self, fraction: float, stage: str) -> None:
        self.bar.setValue(int(fraction * 1000))
        self.bar.setFormat(stage or "%p%")


def head_spec(stack: str, layer: int, head: int) -> str:
    return f"{layer}.{head}" if stack == "self" else f"{stack}:{layer}.{head}"


def parse_spec(text: str) -> list[tuple[str, int, int]]:
    """The heads of a spec the user typed, for marking them (the worker checks them properly)."""
    out = []
    for part in text.split(","):
        stack, _, lh = part.strip().rpartition(":")
        layer, _, head = lh.partition(".")
        if layer.strip().isdigit() and head.strip().isdigit():
            out.append((stack or "self", int(layer), int(head)))
    return out


class InterventionPage(QWidget):
    run = Signal(str, dict)          # op (ablate, sweep, patch), plain arguments
    cancel = Signal(str)             # op
    head_picked = Signal(str, int, int)   # stack, layer, head: a sweep cell was clicked

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stacks: list[str] = ["self"]
        self.pages = QTabWidget()
        self.pages.setDocumentMode(True)
        self.pages.addTab(self._ablate_page(), "Ablate")
        self.pages.addTab(self._sweep_page(), "Head sweep")
        self.pages.addTab(self._patch_page(), "Patch")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.pages)
        self.rows = {"ablate": self.ablate_run, "sweep": self.sweep_run, "patch": self.patch_run}
        self.notes = {"ablate": self.ablate_note, "sweep": self.sweep_note, "patch": self.patch_note}
        for op, row in self.rows.items():
            row.cancel.clicked.connect(lambda _=False, op=op: self.cancel.emit(op))

    # --- pages ----------------------------------------------------------------------------
    def _ablate_page(self) -> QWidget:
        page = QWidget()
        self.heads = QLineEdit()
        self.heads.setPlaceholderText("layer.head, e.g. 0.1, 3.2 — or shift-click thumbnails / sweep cells")
        self.heads.setToolTip("Heads to ablate together. Encoder-decoder models: encoder:0.1, decoder:1.2, "
                              "cross:0.3. Shift-click a tile in the Model view or a cell of the head sweep "
                              "to add it; a plain click on a sweep cell picks only that head.")
        self.heads.textChanged.connect(self._mark_heads)
        self.attn_blocks = QLineEdit()
        self.attn_blocks.setPlaceholderText("layers, e.g. 2")
        self.attn_blocks.setToolTip("Whole attention blocks to ablate (their output, bias included)")
        self.mlp_blocks = QLineEdit()
        self.mlp_blocks.setPlaceholderText("layers, e.g. 2")
        self.mlp_blocks.setToolTip("MLP blocks to ablate")
        self.kind = QComboBox()
        self.kind.addItem("zero", "zero")
        self.kind.addItem("mean over positions", "mean")
        self.kind.setToolTip("Replace by zero, or by its mean over the positions of this input")
        self.target = QLineEdit()
        self.target.setPlaceholderText("top-1")
        self.target.setToolTip("The token whose log-probability is followed (default: the model's top-1). "
                               "A word of several tokens: its first piece is used, and the note says so.")
        self.ablate_run = _RunRow("Ablate")
        self.ablate_run.button.clicked.connect(self._run_ablate)
        self.ablate_note = _note("Pick heads or blocks and press Ablate: the prediction for the prompt "
                                 "before and after.")
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["before", "p", "p after", "Δp", "after", "p"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        form = QFormLayout()
        form.addRow("Heads", self.heads)
        blocks = QHBoxLayout()
        blocks.addWidget(QLabel("Attention blocks"))
        blocks.addWidget(self.attn_blocks, 1)
        blocks.addWidget(QLabel("MLP blocks"))
        blocks.addWidget(self.mlp_blocks, 1)
        form.addRow(blocks)
        kt = QHBoxLayout()
        kt.addWidget(QLabel("Kind"))
        kt.addWidget(self.kind)
        kt.addWidget(QLabel("Target"))
        kt.addWidget(self.target, 1)
        form.addRow(kt)
        lay = QVBoxLayout(page)
        lay.addLayout(form)
        lay.addWidget(self.ablate_run)
        lay.addWidget(self.ablate_note)
        lay.addWidget(self.table, 1)
        return page

    def _sweep_page(self) -> QWidget:
        page = QWidget()
        self.sweep_stack = QComboBox()
        self.sweep_stack.setToolTip("Which attention stack to sweep")
        self.sweep_run = _RunRow("Sweep every head")
        self.sweep_run.button.clicked.connect(self._run_sweep)
        self.sweep_note = _note("Ablates each head alone (kind and target from the Ablate page) and maps "
                                "the change in the target's log-probability: blue = the head helped.")
        self.sweep_map = DeltaHeatmap(value_name="Δ log p", row_name="layer", col_name="head")
        self.sweep_map.clicked.connect(self._sweep_clicked)
        top = QHBoxLayout()
        top.addWidget(QLabel("Stack"))
        top.addWidget(self.sweep_stack)
        top.addWidget(self.sweep_run, 1)
        lay = QVBoxLayout(page)
        lay.addLayout(top)
        lay.addWidget(self.sweep_note)
        lay.addWidget(self.sweep_map, 1)
        self._sweep = None
        return page

    def _patch_page(self) -> QWidget:
        page = QWidget()
        self.clean = QLineEdit()
        self.clean.setPlaceholderText("the clean prompt")
        self.corrupt = QLineEdit()
        self.corrupt.setPlaceholderText("the same prompt with one thing changed (same number of tokens)")
        self.answer = QLineEdit()
        self.answer.setPlaceholderText("clean answer")
        self.wrong = QLineEdit()
        self.wrong.setPlaceholderText("corrupted answer")
        self.site = QComboBox()
        for key, label in (("resid", "residual stream"), ("attn", "attention output"), ("mlp", "MLP output")):
            self.site.addItem(label, key)
        self.site.setToolTip("What is copied from the clean run: the residual stream entering each layer, "
                             "the attention block's output or the MLP block's output")
        self.patch_run = _RunRow("Patch")
        self.patch_run.button.clicked.connect(lambda: self._run_patch(False))
        self.patch_note = _note("Copies one clean activation into the corrupted run at every layer × position "
                                "and reads the answer − wrong logit difference: 0 = corrupted, 1 = clean.")
        self.align = QPushButton("Align on the shorter prompt")
        self.align.setToolTip("Keep the last tokens of the longer prompt so the positions line up")
        self.align.clicked.connect(lambda: self._run_patch(True))
        self.align.hide()
        self.patch_map = DeltaHeatmap(value_name="restored", row_name="layer", col_name="token")
        form = QFormLayout()
        form.addRow("Clean", self.clean)
        form.addRow("Corrupted", self.corrupt)
        aw = QHBoxLayout()
        aw.addWidget(self.answer, 1)
        aw.addWidget(QLabel("Wrong"))
        aw.addWidget(self.wrong, 1)
        aw.addWidget(QLabel("Site"))
        aw.addWidget(self.site)
        form.addRow("Answer", aw)
        lay = QVBoxLayout(page)
        lay.addLayout(form)
        lay.addWidget(self.patch_run)
        note_row = QHBoxLayout()
        note_row.addWidget(self.patch_note, 1)
        note_row.addWidget(self.align, 0, Qt.AlignTop)
        lay.addLayout(note_row)
        lay.addWidget(self.patch_map, 1)
        return page

    # --- context ---------------------------------------------------------------------------
    def set_stacks(self, stacks: list[str], current: str) -> None:
        self.stacks = list(stacks)
        self.sweep_stack.blockSignals(True)
        self.sweep_stack.clear()
        for s in stacks:
            self.sweep_stack.addItem(s, s)
        self.sweep_stack.setCurrentIndex(max(0, self.sweep_stack.findData(current)))
        self.sweep_stack.blockSignals(False)

    def model_changed(self) -> None:
        """Results belong to the previous model: drop them (the typed inputs stay)."""
        self.table.setRowCount(0)
        self.sweep_map.clear()
        self.sweep_map.mark([])
        self.patch_map.clear()
        self._sweep = None
        for op in OPS:
            self.rows[op].busy(False)
            self.rows[op].bar.setFormat("")

    def add_head(self, stack: str, layer: int, head: int, extend: bool) -> None:
        """Put a head in the ablation list: alone, or added (removed if it is there already)."""
        spec = head_spec(stack, layer, head)
        parts = [p.strip() for p in self.heads.text().split(",") if p.strip()] if extend else []
        if spec in parts:
            parts.remove(spec)
        else:
            parts.append(spec)
        self.heads.setText(", ".join(parts))

    def _mark_heads(self) -> None:
        stack = self.sweep_stack.currentData() or "self"
        self.sweep_map.mark([(layer, h) for s, layer, h in parse_spec(self.heads.text()) if s == stack])

    # --- running ---------------------------------------------------------------------------
    def _common(self) -> dict:
        return {"kind": self.kind.currentData(), "target": self.target.text().strip() or None}

    def _run_ablate(self) -> None:
        self.run.emit("ablate", {**self._common(), "heads": self.heads.text(), "attn": self.attn_blocks.text(),
                                 "mlp": self.mlp_blocks.text()})

    def _run_sweep(self) -> None:
        self.run.emit("sweep", {**self._common(), "stack": self.sweep_stack.currentData()})

    def _run_patch(self, align: bool) -> None:
        self.align.hide()
        self.run.emit("patch", {"clean": self.clean.text(), "corrupt": self.corrupt.text(),
                                "answer": self.answer.text().strip(), "wrong": self.wrong.text().strip(),
                                "site": self.site.currentData(), "align": align})

    def started(self, op: str) -> None:
        self.rows[op].busy(True)

    def progress(self, op: str, fraction: float, stage: str) -> None:
        self.rows[op].progress(fraction, stage)

    def failed(self, op: str, message: str) -> None:
        self.rows[op].busy(False)
        self.rows[op].bar.setFormat("")
        self.notes[op].setText(f"<span style='color:{lab_theme.tone('error')}'>{escape(message)}</span>")
        if op == "patch" and "align on the shorter" in message.lower():
            self.align.show()

    def _done(self, op: str) -> None:
        self.rows[op].busy(False)
        self.rows[op].progress(1.0, "done")

    def _sweep_clicked(self, layer: int, head: int) -> None:
        stack = self.sweep_stack.currentData() or "self"
        shift = bool(QGuiApplication.keyboardModifiers() & Qt.ShiftModifier)
        self.add_head(stack, layer, head, extend=shift)
        self.head_picked.emit(stack, layer, head)

    # --- results ---------------------------------------------------------------------------
    def show_ablation(self, res) -> None:
        self._done("ablate")
        notes = "".join(f"<br><i>{escape(n)}</i>" for n in res.notes)
        if res.readout == "embedding":
            self.table.setRowCount(0)
            self.ablate_note.setText(f"cos(before, after) of the mean embedding <b>{res.cosine_mean:.5f}</b>, "
                                     f"of the first token's {res.cosine_first:.5f}{notes}")
            return
        t = escape(display_token(res.target.piece))
        self.ablate_note.setText(
            f"target “{t}”: log p {res.logp_before:.3f} → {res.logp_after:.3f} "
            f"(<b>Δ {res.delta_logp:+.3f}</b>) · KL(before‖after) <b>{res.kl:.4f}</b> nats{notes}")
        self.table.setRowCount(len(res.top))
        for i, (b, a) in enumerate(zip(res.top, res.top_after)):
            cells = [display_token(b.piece), f"{b.before:.4f}", f"{b.after:.4f}", f"{b.delta:+.4f}",
                     display_token(a.piece), f"{a.after:.4f}"]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 3:
                    item.setForeground(pg.mkColor(lab_theme.tone("error" if b.delta < 0 else "good")))
                if j in (0, 4) and (b if j == 0 else a).id == res.target.id:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(i, j, item)

    def show_sweep(self, res) -> None:
        self._done("sweep")
        self._sweep = res
        stack = next(iter(res.maps))
        m = res.maps[stack]
        self.sweep_map.value_name = "Δ log p" if res.target is not None else "1 − cosine"
        self.sweep_map.set_values(m, [str(i) for i in range(m.shape[0])], [str(i) for i in range(m.shape[1])])
        self._mark_heads()
        what = (f"the change in log p of “{escape(display_token(res.target.piece))}” "
                f"(log p {res.logp_before:.3f} before)" if res.target is not None else escape(res.measure))
        worst = np.unravel_index(int(np.argmin(m) if res.target is not None else np.argmax(m)), m.shape)
        notes = "".join(f"<br><i>{escape(n)}</i>" for n in res.notes)
        self.sweep_note.setText(f"Each cell: {what} when that head alone is ablated ({res.kind}). "
                                f"Most important: head {worst[0]}.{worst[1]} ({m[worst]:+.3f}). Click a cell "
                                f"to ablate it on the Ablate page; shift-click adds it.{notes}")

    def show_patch(self, res) -> None:
        self._done("patch")
        labels = [display_token(t) for t in res.corrupt_tokens]
        self.patch_map.set_values(res.map, [str(i) for i in range(res.map.shape[0])], labels,
                                  limit=max(1.0, float(np.nanmax(np.abs(res.map)))))
        notes = "".join(f"<br><i>{escape(n)}</i>" for n in res.notes)
        self.patch_note.setText(
            f"Logit difference “{escape(display_token(res.answer.piece))}” − “{escape(display_token(res.wrong.piece))}”"
            f": clean {res.ld_clean:.3f}, corrupted {res.ld_corrupt:.3f}. Red cells restore the clean answer "
            f"(1 = all of it). Token axis: the corrupted prompt.{notes}")

    # --- lessons ---------------------------------------------------------------------------
    def apply(self, settings: dict) -> Optional[str]:
        """Take lesson settings; returns the op to run when the lesson says ``run``."""
        for key, field in (("heads", self.heads), ("attn", self.attn_blocks), ("mlp", self.mlp_blocks),
                           ("target", self.target), ("clean", self.clean), ("corrupt", self.corrupt),
                           ("answer", self.answer), ("wrong", self.wrong)):
            if isinstance(settings.get(key), str):
                field.setText(settings[key])
        for key, combo in (("kind", self.kind), ("site", self.site)):
            if combo.findData(settings.get(key)) >= 0:
                combo.setCurrentIndex(combo.findData(settings[key]))
        if settings.get("mode") in OPS:
            self.pages.setCurrentIndex(OPS.index(settings["mode"]))
        return OPS[self.pages.currentIndex()] if settings.get("run") else None

    def state(self) -> dict:
        return {"mode": OPS[self.pages.currentIndex()], "heads": self.heads.text(), "attn": self.attn_blocks.text(),
                "mlp": self.mlp_blocks.text(), "kind": self.kind.currentData(), "target": self.target.text(),
                "clean": self.clean.text(), "corrupt": self.corrupt.text(), "answer": self.answer.text(),
                "wrong": self.wrong.text(), "site": self.site.currentData()}

    def trigger(self, op: str) -> None:
        {"ablate": self._run_ablate, "sweep": self._run_sweep, "patch": lambda: self._run_patch(False)}[op]()
