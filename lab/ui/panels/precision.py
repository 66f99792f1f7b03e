"""Precision converter: export the loaded model to ONNX at fp32/fp16/int8/int4 and compare
what each costs and saves; plus the memory calculator (weights, inference, training).

The conversion runs on the model worker (``lab.core.precision.convert``); the calculator
is ``lab.core.memory`` (the same numbers ``tvlab memory`` prints). No torch here.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox,
                               QProgressBar, QPushButton, QSpinBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QTabWidget, QTextBrowser, QVBoxLayout, QWidget)

from lab.core import memory as mem
from lab.core import precision
from lab.core.devices import device_memory
from lab.core.errors import LabError
from lab.core.units import number_or_none
from lab.ui.panels.base import Panel

CHANNEL = "precision.convert"
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

COLUMNS = ["Precision", "File", "vs fp32", "Params", "Run mem", "Latency med / p95",
           "Max |Δlogit|", "Mean |Δlogit|", "Top-1", "KL (nats)", "Perplexity (Δ)", "NaN / inf"]
COLUMN_TIPS = ["", "Model file plus external data, on disk", "File size / fp32 file size",
               "Bytes of all initializers (weights, scales, zero points)",
               "Resident memory added by creating an onnxruntime session and running it once",
               "Median and 95th-percentile latency of one forward pass on the fixed input",
               "Largest absolute logit difference against the torch fp32 model",
               "Mean absolute logit difference against the torch fp32 model",
               "Positions where the top token equals torch fp32's",
               "Mean KL(torch fp32 || onnx) of the next-token distributions, in nats",
               "Perplexity on the evaluation text and its change from torch fp32",
               "NaN and inf logits (fp16 overflow shows here)"]

#: Memory sizes to compare with when no GPU is detected (bytes, decimal GB as sold).
GPU_PRESETS = [("16 GB (T4, V100 16 GB)", 16e9), ("24 GB (RTX 4090, A10)", 24e9), ("40 GB (A100 40 GB)", 40e9),
               ("80 GB (A100 / H100 80 GB)", 80e9), ("141 GB (H200)", 141e9)]


INTRO = ("Exports the loaded model to ONNX: fp32 (the reference), then fp16, int8 and int4 derived "
         "from it. Each file is run with onnxruntime on a fixed text and compared with the torch fp32 "
         "model: size on disk, memory, latency, logit differences, top-1 agreement, KL and perplexity.")


def _mb(b) -> str:
    return "–" if b is None else mem.format_bytes(b)


def _num(v, spec) -> str:
    return "–" if v is None else spec.format(v)


parse_count = number_or_none   # '124M', '1e9', '7B', '1,300,000' -> float, or None


class PrecisionPanel(Panel):
    panel_id = "precision"
    title = "Precision converter"
    area = "right"
    tab_with = "attention"
    order = 50

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.report = None
        self._running = False
        self._devices: list[tuple[str, float]] = []
        self.confirm_replace = self._ask_replace      # tests replace this
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_convert(), "Convert to ONNX")
        self.tabs.addTab(self._build_calculator(), "Memory calculator")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)
        session.progress.connect(self._on_progress)
        self._update_buttons()
        self._draw_chart()
        self.summary.setText(INTRO)
        self.update_calculator()
        self.session.request("precision.devices", lambda _lm, _job: device_memory(),
                             self._on_devices, lambda _msg: None, needs_model=False,
                             label="detecting device memory")

    # --- building ---------------------------------------------------------------------------
    def _build_convert(self) -> QWidget:
        self.checks = {}
        prec_row = QHBoxLayout()
        tips = {"fp32": "the exported graph, the reference", "fp16": "half-precision weights and compute",
                "int8": "dynamic int8 quantization of MatMul/Gemm/embedding weights",
                "int4": "int4 weight-only (MatMulNBits), blocks of 32"}
        for p in precision.PRECISIONS:
            cb = QCheckBox(p)
            cb.setChecked(p in precision.DEFAULT_PRECISIONS)
            cb.setToolTip(tips[p])
            cb.toggled.connect(self._update_buttons)
            self.checks[p] = cb
            prec_row.addWidget(cb)
        prec_row.addStretch(1)
        self.per_channel = QCheckBox("int8 per channel")
        self.per_channel.setToolTip("One int8 scale per output channel instead of one per tensor")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("Output folder (new or empty)")
        self.folder.textChanged.connect(self._update_buttons)
        browse = QPushButton("…")
        browse.setToolTip("Choose the output folder")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.convert_button = QPushButton("Convert")
        self.convert_button.setDefault(True)
        self.convert_button.clicked.connect(self.start_conversion)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_conversion)
        buttons = QHBoxLayout()
        buttons.addWidget(self.convert_button)
        buttons.addWidget(self.cancel_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.stage = QLabel("Load a model, choose precisions and a folder, then Convert.")
        self.stage.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.hide()

        form = QFormLayout()
        form.addRow("Precisions", prec_row)
        form.addRow("", self.per_channel)
        form.addRow("Folder", folder_row)
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addLayout(form)
        llay.addLayout(buttons)
        llay.addWidget(self.progress_bar)
        llay.addWidget(self.stage)
        llay.addWidget(self.message)
        llay.addStretch(1)
        left.setMinimumWidth(260)
        left.setMaximumWidth(360)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        for j, tip in enumerate(COLUMN_TIPS):
            if tip:
                self.table.horizontalHeaderItem(j).setToolTip(tip)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.chart_metric = QComboBox()
        for label, *_ in CHART_METRICS:
            self.chart_metric.addItem(label)
        self.chart_metric.currentIndexChanged.connect(self._draw_chart)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(140)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.showGrid(y=True, alpha=0.3)
        self.bars = None
        self.bar_labels: list = []
        chart = QWidget()
        clay = QVBoxLayout(chart)
        clay.setContentsMargins(0, 0, 0, 0)
        clay.addWidget(self.chart_metric)
        clay.addWidget(self.plot, 1)

        results = QSplitter(Qt.Horizontal)
        table_box = QWidget()
        tlay = QVBoxLayout(table_box)
        tlay.setContentsMargins(0, 0, 0, 0)
        tlay.addWidget(self.table, 1)
        tlay.addWidget(self.summary)
        results.addWidget(table_box)
        results.addWidget(chart)
        results.setStretchFactor(0, 5)
        results.setStretchFactor(1, 2)
        chart.setMinimumWidth(220)
        chart.setMaximumWidth(430)
        results.setSizes([1000, 360])

        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(2, 2, 2, 2)
        row.addWidget(left)
        row.addWidget(results, 1)
        return page

    def _build_calculator(self) -> QWidget:
        self.params_edit = QLineEdit()
        self.params_edit.setPlaceholderText("e.g. 124M, 7B, 1e9")
        self.params_edit.setToolTip("Parameter count: the loaded model's, or type any")
        self.params_edit.editingFinished.connect(self.update_calculator)
        self.use_model = QPushButton("Loaded model")
        self.use_model.setToolTip("Use the loaded model's parameter count and shape")
        self.use_model.clicked.connect(self.use_loaded_model)
        self.course_button = QPushButton("Course example (1B)")
        self.course_button.clicked.connect(self.show_course_example)
        prow = QHBoxLayout()
        prow.addWidget(self.params_edit, 1)
        prow.addWidget(self.use_model)
        prow.addWidget(self.course_button)
        self.layers, self.hidden, self.heads = QSpinBox(), QSpinBox(), QSpinBox()
        for sb, hi in ((self.layers, 1000), (self.hidden, 100_000), (self.heads, 1000)):
            sb.setRange(0, hi)
            sb.setSpecialValueText("?")
            sb.valueChanged.connect(self.update_calculator)
        srow = QHBoxLayout()
        for label, sb in (("layers", self.layers), ("hidden", self.hidden), ("heads", self.heads)):
            srow.addWidget(QLabel(label))
            srow.addWidget(sb)
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(8)
        self.seq = QSpinBox()
        self.seq.setRange(1, 1_000_000)
        self.seq.setValue(2048)
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
        form.addRow("Training", self.train_precision)
        form.addRow("Inference dtype", self.infer_dtype)
        form.addRow("Compare with", self.device)
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        form.addRow("", self.device_note)
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addLayout(form)
        llay.addStretch(1)
        left.setMaximumWidth(460)

        self.calc_view = QTextBrowser()
        self.calc_plot = pg.PlotWidget()
        self.calc_plot.setMouseEnabled(x=False, y=False)
        self.calc_plot.hideButtons()
        self.calc_plot.setMinimumWidth(220)
        self.calc_plot.setLabel("left", "GB")
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.calc_view)
        split.addWidget(self.calc_plot)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(2, 2, 2, 2)
        row.addWidget(left)
        row.addWidget(split, 1)
        self._fill_devices()
        return page

    # --- model ---------------------------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        self._update_buttons()
        if card is None:
            return
        if not self.folder.text().strip() or self._default_folder_in_use:
            self.folder.setText(str(Path.home() / "tvlab-onnx" / _safe_name(card.name)))
            self._default_folder_in_use = True
        if self.report is not None and self.report.model != (card.ref or card.name):
            self.stage.setText(f"The readout below is for {self.report.model}; convert again for {card.name}.")
        self.use_loaded_model()

    _default_folder_in_use = False

    def _update_buttons(self) -> None:
        has_model = self.session.card is not None
        chosen = any(cb.isChecked() for cb in self.checks.values())
        self.convert_button.setEnabled(has_model and chosen and bool(self.folder.text().strip()) and not self._running)
        self.cancel_button.setEnabled(self._running)
        self.per_channel.setEnabled(self.checks["int8"].isChecked())
        if not has_model and not self._running:
            self.convert_button.setToolTip("Load a model first")
        else:
            self.convert_button.setToolTip("Export and measure the chosen precisions")

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose an empty output folder")
        if path:
            self.folder.setText(path)
            self._default_folder_in_use = False

    # --- conversion ---------------------------------------------------------------------------
    def selected_precisions(self) -> list[str]:
        return [p for p, cb in self.checks.items() if cb.isChecked()]

    def start_conversion(self) -> bool:
        out = self.folder.text().strip()
        precisions = self.selected_precisions()
        if self.session.card is None or not out or not precisions:
            return False
        self._default_folder_in_use = False
        force = False
        try:
            precision.check_output_folder(out, force=False)
        except LabError as err:
            if "already holds" not in str(err):
                self._show_message(str(err), error=True)
                return False
            if not self.confirm_replace(str(err)):
                return False
            force = True
        per_channel = self.per_channel.isChecked()
        self._running = True
        self.message.hide()
        self.progress_bar.setValue(0)
        self.stage.setText("Starting…")
        self._update_buttons()
        self.session.request(
            CHANNEL,
            lambda lm, job: precision.convert(lm, out, precisions, force=force, per_channel=per_channel, job=job),
            self._on_done, self._on_failed, label="converting to ONNX", coalesce=False)
        return True

    def cancel_conversion(self) -> None:
        if self._running:
            self.stage.setText("Cancelling… (the exporter finishes its current step first)")
            self.session.cancel(CHANNEL)

    def _ask_replace(self, text: str) -> bool:
        answer = QMessageBox.question(
            self, "Replace files?", text + "\n\nReplace the lab's ONNX files and report there? "
            "Other files in the folder are left alone.", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_progress(self, fraction: float, stage: str) -> None:
        if not self._running:
            return
        self.progress_bar.setValue(int(fraction * 1000))
        self.stage.setText(stage)

    def _on_done(self, report) -> None:
        self._running = False
        self.progress_bar.setValue(1000)
        self.stage.setText(f"Wrote {len(report.rows)} file(s) and report.json to {report.out}")
        self.show_report(report)
        self._update_buttons()

    def _on_failed(self, message: str) -> None:
        self._running = False
        self.progress_bar.setValue(0)
        if message.startswith("Cancelled"):
            self.stage.setText("Cancelled: the output folder was left as it was (no partial files).")
        else:
            self.stage.setText("The conversion stopped; nothing was written.")
            self._show_message(message, error=True)
        self._update_buttons()

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #d03030;" if error else "color: #c77700;")
        self.message.setText(text)
        self.message.show()

    # --- the readout -------------------------------------------------------------------------
    def show_report(self, report) -> None:
        self.report = report
        rows = report.rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            if r.error:
                cells = [r.precision, r.error] + [""] * (len(COLUMNS) - 2)
            else:
                ppl = "–" if r.perplexity is None else (
                    f"{r.perplexity:.3f} ({_signed(r.perplexity_change)})" if r.perplexity_change is not None
                    and np.isfinite(r.perplexity) else f"{r.perplexity:.3f}")
                cells = [r.precision, _mb(r.file_bytes), _num(r.size_ratio, "{:.2f}×"), _mb(r.param_bytes),
                         _mb(r.runtime_bytes),
                         f"{_num(r.latency_ms_median, '{:.1f}')} / {_num(r.latency_ms_p95, '{:.1f}')} ms",
                         _num(r.max_abs_logit_diff, "{:.2e}"),
                         _num(r.mean_abs_logit_diff, "{:.2e}"), _num(r.top1_agreement, "{:.1%}"),
                         _num(r.kl, "{:.2e}"), ppl, f"{r.nan_count or 0} / {r.inf_count or 0}"]
            tip = "\n".join(r.notes) or None
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignLeft | Qt.AlignVCenter if j in (0, 1) and r.error
                                      else (Qt.AlignRight | Qt.AlignVCenter if j else Qt.AlignCenter))
                if tip:
                    item.setToolTip(tip)
                if j == len(COLUMNS) - 1 and (r.nan_count or r.inf_count):
                    item.setForeground(Qt.red)
                self.table.setItem(i, j, item)
            if r.error:
                self.table.setSpan(i, 1, 1, len(COLUMNS) - 1)
        lines = [f"<b>{escape(report.model)}</b> ({escape(report.kind)}) — {escape(report.graph)}; opset {report.opset}.",
                 f"Latency: {escape(report.provider)}, {report.threads} thread(s), batch 1 × {report.eval_tokens} "
                 f"tokens of a fixed evaluation text; fidelity against the torch fp32 model on the same text"
                 + (f" (torch perplexity {report.perplexity_torch:.3f})." if report.perplexity_torch else ".")]
        lines += [f"<span style='color:#c77700'>{escape(n)}</span>" for n in report.notes]
        self.summary.setText("<br>".join(lines))
        self._draw_chart()

    def _draw_chart(self) -> None:
        self.plot.clear()
        self.bar_labels = []
        self.bars = None
        label, attr, scale, unit = CHART_METRICS[self.chart_metric.currentIndex()]
        self.plot.setLabel("left", f"{label} ({unit})" if unit else label)
        if self.report is None:
            self.plot.setTitle("Convert to compare the precisions")
            self.plot.getAxis("bottom").setTicks([[]])
            return
        self.plot.setTitle(None)
        rows = [r for r in self.report.rows if r.error is None]
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

    def chart_values(self) -> list[float]:
        """Heights of the bars as drawn (for tests and the selftest)."""
        if self.bars is None:
            return []
        return [float(h) for h in self.bars.opts["height"]]

    # --- memory calculator ---------------------------------------------------------------------
    def _on_devices(self, devices) -> None:
        self._devices = list(devices)
        self._fill_devices()
        self.update_calculator()

    def _fill_devices(self) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        gpus = [(n, b) for n, b in self._devices if not n.startswith("CPU")]
        for name, b in gpus:
            self.device.addItem(f"{name} — {b / 1e9:.0f} GB (detected)", b)
        for name, b in GPU_PRESETS:
            self.device.addItem(name, b)
        for name, b in self._devices:
            if name.startswith("CPU"):
                self.device.addItem(f"{name} — {b / 1e9:.0f} GB (detected)", b)
        self.device.setCurrentIndex(0)
        self.device.blockSignals(False)
        if gpus:
            self.device_note.setText(f"Detected: {gpus[0][0]} with {gpus[0][1] / 1e9:.1f} GB.")
        elif self._devices:
            self.device_note.setText("No GPU detected on this machine: pick a GPU size to compare with "
                                     "(the system RAM is in the list too).")
        else:
            self.device_note.setText("Detecting device memory…")

    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.precision``: ``view`` (convert, memory), ``params`` (a count
        for the memory calculator, e.g. 1e9 or "7B"), ``dtype`` (inference precision)."""
        if settings.get("view") in ("convert", "memory"):
            self.tabs.setCurrentIndex(("convert", "memory").index(settings["view"]))
        if "params" in settings:
            self.tabs.setCurrentIndex(1)
            self.params_edit.setText(str(settings["params"]))
            for sb in (self.layers, self.hidden, self.heads):
                sb.blockSignals(True)
                sb.setValue(0)
                sb.blockSignals(False)
        if settings.get("dtype") and self.infer_dtype.findText(str(settings["dtype"])) >= 0:
            self.infer_dtype.setCurrentText(str(settings["dtype"]))
        self.update_calculator()

    def use_loaded_model(self) -> None:
        card = self.session.card
        if card is None:
            return
        self.params_edit.setText(f"{card.params:,}")
        for sb, v in ((self.layers, card.layers + (card.decoder_layers or 0)), (self.hidden, card.hidden),
                      (self.heads, card.heads)):
            sb.blockSignals(True)
            sb.setValue(int(v or 0))
            sb.blockSignals(False)
        if card.context:
            self.seq.blockSignals(True)
            self.seq.setValue(int(card.context))
            self.seq.blockSignals(False)
        self.update_calculator()

    def show_course_example(self) -> None:
        self.params_edit.setText("1e9")
        for sb in (self.layers, self.hidden, self.heads):
            sb.blockSignals(True)
            sb.setValue(0)
            sb.blockSignals(False)
        self.update_calculator()

    def calculator_inputs(self) -> dict:
        shape = [sb.value() or None for sb in (self.layers, self.hidden, self.heads)]
        if any(v is None for v in shape):
            shape = [None, None, None]
        return dict(params=parse_count(self.params_edit.text()), layers=shape[0], hidden=shape[1],
                    heads=shape[2], batch=self.batch.value(), seq=self.seq.value(),
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
                               inference_dtype=a["inference_dtype"], device_bytes=a["device_bytes"])
        except LabError as err:
            self.estimate = None
            self.calc_view.setHtml(f"<p style='color:#d03030'>{escape(str(err))}</p>")
            return
        self.estimate = est
        self.calc_view.setHtml(self._calc_html(est, a))
        self._draw_calc_chart(est, a)

    def _calc_html(self, est: dict, a: dict) -> str:
        f = mem.format_bytes
        t = est["training"]
        adam = t["adam_bytes"]
        w = "".join(f"<td align=right>{f(b)}</td>" for b in est["weights_bytes"].values())
        inf = "".join(f"<td align=right>{f(b)}</td>" for b in est["inference_bytes"].values())
        head = "".join(f"<th>{d}</th>" for d in est["weights_bytes"])
        acts = (f"{f(t['activations_bytes'])} (batch {a['batch']} × {a['seq']} tokens)"
                if t["activations_bytes"] is not None else "not estimated: give layers, hidden and heads")
        parts = [f"<p><b>{est['params']:,.0f} parameters</b></p>"]
        fits = est.get("fits")
        if fits:
            name = escape(a["device_name"].split(" (detected)")[0].split(" — ")[0])
            for k, v in fits.items():
                color = "#2e8b57" if v["fits"] else "#d03030"
                parts.append(f"<p style='color:{color}'><b>Does it fit on {name}? {k.capitalize()}: "
                             f"{escape(v['verdict'])}</b></p>")
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
            f"<tr><td><b>total</b></td><td align=right><b>{f(t['total_bytes'])}</b></td></tr></table>",
        ]
        if fits:
            parts.append(f"<p><small>{escape(next(iter(fits.values()))['note'])}</small></p>")
        parts.append(self._course_html())
        srcs = est["sources"]
        parts.append("<p><small>Sources: " + "<br>".join(escape(srcs[k]) for k in
                                                          ("dtype", "inference", "training", "activations")) +
                     "</small></p>")
        return "".join(parts)

    def _course_html(self) -> str:
        ex = mem.course_example(1e9)
        items = "".join(f"<li>{escape(line)}</li>" for line in ex["explanation"])
        return f"<p><b>The course's worked example: 1B parameters</b></p><ol>{items}</ol>" \
               f"<p><small>{escape(ex['source'])}</small></p>"

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
        top = max(total, infer)
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
            p.setTitle(f"<span style='color:#2e8b57'>device: {dev:.0f} GB, far above these bars</span>")
        p.getAxis("bottom").setTicks([[(0, f"training {t['precision']}"), (1.6, f"inference {a['inference_dtype']}")]])
        p.setXRange(-0.6, 2.4, padding=0)
        p.setYRange(0, top * 1.12, padding=0)

    def sizeHint(self):
        """A bottom strip: wide and short, so the views above keep most of the height."""
        from PySide6.QtCore import QSize

        return QSize(1200, 300)

    # --- selftest ----------------------------------------------------------------------------------
    def selftest_ready(self) -> bool:
        return self.session.card is not None and getattr(self, "estimate", None) is not None


def _signed(v: float) -> str:
    return "±0.000" if abs(v) < 5e-4 else f"{v:+.3f}"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"
