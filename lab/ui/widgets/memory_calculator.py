"""The memory calculator: weights, inference and training memory of a model size, and
whether it fits on a device (``lab.core.memory``, the numbers ``tvlab memory`` prints).

Plain values in (a parameter count, a ModelCard, the device list); no torch.
"""
from __future__ import annotations

from html import escape
from typing import Callable, Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from lab.core import memory as mem
from lab.core.errors import LabError
from lab.core.units import format_bytes
from lab.ui import theme as lab_theme
from lab.ui.widgets import plot_export
from lab.ui.widgets.control_names import name_buttons, name_control

#: Memory sizes to compare with when no GPU is detected (bytes, decimal GB as sold).
#: Verdict tones (lab.ui.theme): only "fits" is good; "at the limit" and "unknown" are a warning.
VERDICT_TONES = {"fits": "good", "at the limit": "warn", "unknown": "warn", "does not fit": "error"}
GPU_PRESETS = [("16 GB (T4, V100 16 GB)", 16e9), ("24 GB (RTX 4090, A10)", 24e9), ("40 GB (A100 40 GB)", 40e9),
               ("80 GB (A100 / H100 80 GB)", 80e9), ("141 GB (H200)", 141e9)]


RESULTS_CHARS = 44     # the results column's least width, in average characters


class MemoryCalculator(QWidget):
    """Form on the left, the estimate as text and a bar chart on the right.

    ``parse`` reads a typed parameter count ('124M', '7B', '1e9') into a float, or None."""

    def __init__(self, parse: Callable[[str], Optional[float]], parent=None):
        super().__init__(parent)
        self._parse = parse
        self._devices: list[tuple[str, float]] = []
        self.estimate = None
        self.params_edit = QLineEdit()
        self.params_edit.setPlaceholderText("e.g. 124M, 7B, 1e9")
        self.params_edit.setToolTip("Parameter count: the loaded model's, or type any")
        self.params_edit.editingFinished.connect(self._params_typed)
        self.use_model = QPushButton("Loaded model")
        self.use_model.setToolTip("Use the loaded model's parameter count and shape")
        self.course_button = QPushButton("Course example (1B)")
        self.course_button.clicked.connect(self.show_course_example)
        name_buttons(self.use_model, self.course_button)
        prow = QHBoxLayout()
        prow.addWidget(self.params_edit, 1)
        prow.addWidget(self.use_model)
        prow.addWidget(self.course_button)
        self.layers, self.hidden, self.heads = QSpinBox(), QSpinBox(), QSpinBox()
        for sb, hi in ((self.layers, 1000), (self.hidden, 100_000), (self.heads, 1000)):
            sb.setRange(0, hi)
            sb.setSpecialValueText("?")
            sb.setToolTip("The model's shape for the activations estimate; '?' (0) leaves activations "
                          "out, and the training verdict is then 'unknown'")
            sb.valueChanged.connect(self._shape_edited)
        self.layers.setObjectName("calc-layers")
        self.hidden.setObjectName("calc-d-model")
        self.heads.setObjectName("calc-heads")
        self._shape_source = "typical"      # typical | model | given: where the shape came from
        self._shape_basis = ""
        srow = QHBoxLayout()
        for label, sb in (("layers", self.layers), ("d_model", self.hidden), ("heads", self.heads)):
            srow.addWidget(QLabel(label))
            srow.addWidget(sb)
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(mem.TYPICAL_BATCH)
        self.seq = QSpinBox()
        self.seq.setRange(1, 1_000_000)
        self.seq.setValue(mem.TYPICAL_SEQ)
        self.train_precision = QComboBox()
        self.train_precision.addItem("mixed (bf16/fp16 + fp32 master)", "mixed")
        self.train_precision.addItem("fp32", "fp32")
        self.infer_dtype = QComboBox()
        self.infer_dtype.addItems(list(mem.DTYPE_BYTES))
        self.infer_dtype.setCurrentText("fp16")
        for w in (self.batch, self.seq):
            w.valueChanged.connect(self.update_calculator)
        for w in (self.train_precision, self.infer_dtype):
            w.currentIndexChanged.connect(self.update_calculator)
        brow = QHBoxLayout()
        for label, w in (("batch", self.batch), ("sequence", self.seq)):
            brow.addWidget(QLabel(label))
            brow.addWidget(w)
        self.device = QComboBox()
        self.device.currentIndexChanged.connect(self.update_calculator)
        form = QFormLayout()
        form.addRow("Parameters", prow)
        form.addRow("Shape", srow)
        form.addRow("Activations", brow)
        self.shape_note = QLabel()
        self.shape_note.setObjectName("calc-shape-note")
        self.shape_note.setWordWrap(True)
        form.addRow("", self.shape_note)
        form.addRow("Training", self.train_precision)
        form.addRow("Inference dtype", self.infer_dtype)
        form.addRow("Compare with", self.device)
        name_control(self.device, "list", "Compare with")
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        form.addRow("", self.device_note)
        # The results read under the form, as wide as it (RESULTS_CHARS characters at
        # least, so no label breaks inside a word); the chart takes the rest of the width.
        self.calc_view = QTextBrowser()
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addLayout(form)
        llay.addWidget(self.calc_view, 1)
        self.calc_view.setMinimumWidth(self.fontMetrics().averageCharWidth() * RESULTS_CHARS)

        self.calc_plot = pg.PlotWidget()
        self.calc_plot.setMouseEnabled(x=False, y=False)
        self.calc_plot.hideButtons()
        plot_export.attach(self.calc_plot, "memory")
        self.calc_plot.setMinimumWidth(200)
        self.calc_plot.setLabel("left", "GB")
        split = QSplitter(Qt.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(left)
        split.addWidget(self.calc_plot)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        row = QHBoxLayout(self)
        row.setContentsMargins(2, 2, 2, 2)
        row.addWidget(split, 1)
        self._fill_devices()
        self.update_calculator()

    def set_devices(self, devices) -> None:
        """The machine's memory (``lab.core.precision.device_memory``): GPUs first, then presets."""
        self._devices = list(devices)
        self._fill_devices()
        self.update_calculator()

    def _fill_devices(self) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        gpus = [(n, b) for n, b in self._devices if not n.startswith("CPU")]
        for name, b in gpus:
            self.device.addItem(f"{name} — {format_bytes(b)} (detected)", b)
        for name, b in GPU_PRESETS:
            self.device.addItem(name, b)
        for name, b in self._devices:
            if name.startswith("CPU"):
                self.device.addItem(f"{name} — {format_bytes(b)} (detected)", b)
        self.device.setCurrentIndex(0)
        self.device.blockSignals(False)
        if gpus:
            self.device_note.setText(f"Detected: {gpus[0][0]} with {format_bytes(gpus[0][1])}.")
        elif self._devices:
            self.device_note.setText("No GPU detected on this machine: pick a GPU size to compare with "
                                     "(the system RAM is in the list too).")
        else:
            self.device_note.setText("Detecting device memory…")

    def use_card(self, card) -> None:
        """The loaded model's parameter count, shape and context."""
        if card is None:
            return
        self.params_edit.setText(f"{card.params:,}")
        self._set_shape(card.layers + (card.decoder_layers or 0), card.hidden, card.heads, "model",
                        f"{card.name}'s own shape")
        if card.context:
            self.seq.blockSignals(True)
            self.seq.setValue(int(card.context))
            self.seq.blockSignals(False)
        self.update_calculator()

    def set_params(self, count) -> None:
        """A given parameter count without a shape (a lesson's ``params``, the course example):
        the typical shape for it, at the typical batch and sequence length."""
        self.params_edit.setText(str(count))
        for sb, v in ((self.batch, mem.TYPICAL_BATCH), (self.seq, mem.TYPICAL_SEQ)):   # the shape's own setting
            sb.blockSignals(True)
            sb.setValue(v)
            sb.blockSignals(False)
        self._typical_shape()
        self.update_calculator()

    def _set_shape(self, layers, hidden, heads, source: str, basis: str) -> None:
        for sb, v in ((self.layers, layers), (self.hidden, hidden), (self.heads, heads)):
            sb.blockSignals(True)
            sb.setValue(int(v or 0))
            sb.blockSignals(False)
        self._shape_source, self._shape_basis = source, basis

    def _typical_shape(self) -> None:
        """The published shape nearest to the typed count (``mem.typical_shape``), said as such."""
        n = self._parse(self.params_edit.text())
        if n is None:
            return
        sh = mem.typical_shape(n)
        self._set_shape(sh["layers"], sh["d_model"], sh["heads"], "typical", "typical shape: " + sh["basis"])

    def _params_typed(self) -> None:
        if self._shape_source != "given":    # a shape the user typed stays; a model's or a typical one follows
            self._typical_shape()
        self.update_calculator()

    def _shape_edited(self) -> None:
        self._shape_source, self._shape_basis = "given", "your shape"
        self.update_calculator()

    def show_course_example(self) -> None:
        self.set_params("1e9")

    def calculator_inputs(self) -> dict:
        shape = [sb.value() or None for sb in (self.layers, self.hidden, self.heads)]
        known = all(v is not None for v in shape)
        if not known or self._shape_source == "typical":
            shape = [None, None, None]     # the core picks (and names) the same typical shape
        return dict(params=self._parse(self.params_edit.text()), layers=shape[0], hidden=shape[1],
                    heads=shape[2], activations=known, batch=self.batch.value(), seq=self.seq.value(),
                    precision=self.train_precision.currentData(), inference_dtype=self.infer_dtype.currentText(),
                    device_bytes=self.device.currentData(), device_name=self.device.currentText())

    def update_calculator(self) -> None:
        a = self.calculator_inputs()
        if a["params"] is None:
            self.estimate = None
            self.calc_view.setHtml("<p>Type a parameter count (e.g. <b>124M</b>, <b>7B</b>, <b>1e9</b>) "
                                   "or load a model.</p>" + self._course_html())
            self.calc_plot.clear()
            return
        try:
            est = mem.estimate(a["params"], precision=a["precision"], batch=a["batch"], seq=a["seq"],
                               layers=a["layers"], hidden=a["hidden"], heads=a["heads"],
                               inference_dtype=a["inference_dtype"], device_bytes=a["device_bytes"],
                               activations=a["activations"])
        except LabError as err:
            self.estimate = None
            self.calc_view.setHtml(f"<p style='color:{lab_theme.tone('error')}'>{escape(str(err))}</p>")
            return
        self.estimate = est
        self.shape_note.setText(self._shape_text(a))
        self.calc_view.setHtml(self._calc_html(est, a))
        self._draw_calc_chart(est, a)

    def _shape_text(self, a: dict) -> str:
        if not a["activations"]:
            return ("Shape unknown ('?'): activations are left out, so the training verdict is 'unknown'. "
                    "Type a shape, or use Loaded model / Course example.")
        basis = self._shape_basis or "your shape"
        return f"Activations from {basis}; batch {a['batch']} × {a['seq']} tokens (all editable)."

    def _calc_html(self, est: dict, a: dict) -> str:
        f = mem.format_bytes
        t = est["training"]
        adam = t["adam_bytes"]
        w = "".join(f"<td align=right>{f(b)}</td>" for b in est["weights_bytes"].values())
        inf = "".join(f"<td align=right>{f(b)}</td>" for b in est["inference_bytes"].values())
        head = "".join(f"<th>{d}</th>" for d in est["weights_bytes"])
        shape = est["activations"]["shape"]
        acts = (f"{f(t['activations_bytes'])} ({shape['layers']} layers, d_model {shape['d_model']}, "
                f"batch {shape['batch']} × {shape['seq']} tokens)"
                if shape else "unknown: not estimated (shape '?')")
        parts = [f"<p><b>{est['params']:,.0f} parameters</b></p>"]
        fits = est.get("fits")
        if fits:
            name = escape(a["device_name"].split(" (detected)")[0].split(" — ")[0])
            for k, v in fits.items():
                parts.append(f"<p style='color:{lab_theme.tone(VERDICT_TONES[v['status']])}'><b>Does it fit on {name}? "
                             f"{k.capitalize()}: {escape(v['verdict'])}</b></p>")
        parts += [
            f"<table cellspacing=0 cellpadding=3 border=1><tr><th></th>{head}</tr>"
            f"<tr><td>Weights</td>{w}</tr><tr><td>Inference (× 1.2)</td>{inf}</tr></table>",
            f"<p><b>Training with Adam, {escape(t['precision'])}</b> ({t['bytes_per_param']:g} bytes/param "
            "for the model states)</p><table cellspacing=0 cellpadding=2>"
            f"<tr><td>weights</td><td align=right>{f(t['weights_bytes'])}</td></tr>"
            f"<tr><td>gradients</td><td align=right>{f(t['gradients_bytes'])}</td></tr>"
            f"<tr><td>Adam states (master {f(adam['master'])}, momentum {f(adam['momentum'])}, "
            f"variance {f(adam['variance'])})</td><td align=right>{f(adam['total'])}</td></tr>"
            f"<tr><td>activations</td><td align=right>{acts}</td></tr>"
            f"<tr><td><b>total</b></td><td align=right><b>"
            f"{f(t['total_bytes']) if shape else 'unknown (states ' + f(t['total_bytes']) + ' + ?)'}"
            "</b></td></tr></table>",
        ]
        if fits:
            parts.append(f"<p><small>{escape(next(iter(fits.values()))['note'])}</small></p>")
        parts.append(self._course_html(est["course_example"]))
        srcs = est["sources"]
        parts.append("<p><small>Sources: " + "<br>".join(escape(srcs[k]) for k in
                                                          ("dtype", "inference", "training", "activations",
                                                           "typical_shape")) +
                     "</small></p>")
        return "".join(parts)

    def _course_html(self, ex: Optional[dict] = None) -> str:
        """The course's rule of thumb beside the lab's breakdown, so the two read as one story."""
        ex = ex or mem.course_example(1e9)
        f = mem.format_bytes
        lines = ex["explanation"]
        rule = (f"<b>{f(ex['rule_of_thumb_bytes'])}</b> = 6 × {f(ex['weights_fp32_bytes'])} of fp32 weights, "
                "activations included as a rough budget")
        lab = (f"<b>{f(ex['states_fp32_bytes'])}</b> of model states (16 bytes/param: weights 4 + gradients 4 "
               f"+ Adam 8) + activations and temporaries; the rule's {f(ex['activation_budget_bytes'])} "
               "is that second part")
        story = "".join(f"<li>{escape(line)}</li>" for line in lines[2:])
        return (f"<p><b>Training {ex['params']:.3g} parameters: the course's rule and the lab's breakdown</b></p>"
                "<table cellspacing=0 cellpadding=4 border=1 width='100%'>"
                "<tr><th>Course: rule of thumb</th><th>Lab: breakdown</th></tr>"
                f"<tr><td valign=top>{rule}</td><td valign=top>{lab}</td></tr></table>"
                f"<ul>{story}</ul><p><small>{escape(ex['source'])}</small></p>")

    def _draw_calc_chart(self, est: dict, a: dict) -> None:
        """Training memory as a stacked bar, inference next to it, and the device's memory."""
        p = self.calc_plot
        p.clear()
        t = est["training"]
        parts = [("weights", t["weights_bytes"], "#4c72b0"), ("gradients", t["gradients_bytes"], "#55a868"),
                 ("Adam", t["adam_bytes"]["total"], "#dd8452"), ("activations", t["activations_bytes"] or 0, "#8172b2")]
        total = sum(b for _, b, _ in parts) / 1e9
        infer = est["inference_bytes"][a["inference_dtype"]] / 1e9
        dev = (a["device_bytes"] or 0) / 1e9
        rule = est["course_example"]["rule_of_thumb_bytes"] / 1e9
        top = max(total, infer, rule)
        show_dev = dev and dev <= 3 * top
        if show_dev:
            top = max(top, dev)
        bottom = 0.0
        for name, b, color in parts:
            gb = b / 1e9
            p.addItem(pg.BarGraphItem(x=[0], y0=[bottom], height=[gb], width=0.6, brush=pg.mkBrush(color)))
            if gb > 0.07 * top:   # label the parts tall enough to hold one
                txt = pg.TextItem(f"{name} {gb:.3g}", anchor=(0, 0.5), color=pg.getConfigOption("foreground"))
                txt.setPos(0.32, bottom + gb / 2)
                p.addItem(txt)
            bottom += gb
        p.addItem(pg.BarGraphItem(x=[1.6], height=[infer], width=0.6, brush=pg.mkBrush("#937860")))
        lab = pg.TextItem(f"{infer:.3g}", anchor=(0.5, 1.0), color=pg.getConfigOption("foreground"))
        lab.setPos(1.6, infer)
        p.addItem(lab)
        if show_dev:
            p.addItem(pg.InfiniteLine(pos=dev, angle=0, pen=pg.mkPen("#d03030", width=2, style=Qt.DashLine),
                                      label=f"device {dev:.0f} GB", labelOpts=dict(position=0.8, color="#d03030")))
            p.setTitle(None)
        elif dev:
            good = lab_theme.tone("good")
            p.setTitle(f"<span style='color:{good}'>device: {dev:.0f} GB,<br>far above these bars</span>")
        # the course's rule of thumb beside the training bar: one story, not a contradiction
        p.addItem(pg.PlotCurveItem(x=[-0.35, 0.35], y=[rule, rule],
                                   pen=pg.mkPen(pg.getConfigOption("foreground"), width=2, style=Qt.DotLine)))
        rule_label = pg.TextItem(f"course: 6 × fp32 weights = {rule:.3g} GB", anchor=(0, 1.0),
                                 color=pg.getConfigOption("foreground"))
        rule_label.setPos(-0.55, rule)
        p.addItem(rule_label)
        p.getAxis("bottom").setTicks([[(0, f"training {t['precision']}"), (1.6, f"inference {a['inference_dtype']}")]])
        p.setXRange(-0.6, 2.4, padding=0)
        p.setYRange(0, top * 1.12, padding=0)
