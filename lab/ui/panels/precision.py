"""Precision converter: export the loaded model to ONNX at fp32/fp16/int8/int4 and compare
what each costs and saves; the memory calculator (weights, inference, training); and the
number formats (one number's bits in each format, a weight tensor's errors, the prompt at
fp32 / fp16 / bf16 / int8).

The conversion runs on the model worker, in a ConversionController that owns its state
(lab.ui.controllers.conversion); the formats' model work in a FormatsController
(lab.ui.controllers.formats). The views are widgets (lab.ui.widgets.precision_chart,
memory_calculator, formats_view). No torch here.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lab.core import precision
from lab.core.devices import device_memory
from lab.core.errors import LabError
from lab.core.units import format_bytes, number_or_none
from lab.ui import settings as lab_settings
from lab.ui import theme as lab_theme
from lab.ui.controllers.conversion import ConversionController, default_folder
from lab.ui.controllers.formats import FormatsController
from lab.ui.panels.base import Panel
from lab.ui.widgets.control_names import name_buttons, name_tabs
from lab.ui.widgets.formats_view import FormatsView
from lab.ui.widgets.memory_calculator import MemoryCalculator
from lab.ui.widgets.open_folder import OpenFolderButton
from lab.ui.widgets.precision_chart import PrecisionChart

CHANNEL = ConversionController.name
FORMATS = FormatsController.name
VIEWS = ("convert", "memory", "formats")

COLUMNS = ["Precision", "File", "vs fp32", "Params", "Run mem", "Latency med / p95",
           "Max |Δlogit|", "Mean |Δlogit|", "Top-1", "KL (nats)", "Perplexity (Δ)", "NaN / inf"]
# Column headers on two lines, so the numbers, not the headers, set the columns' widths.
HEADERS = {"Latency med / p95": "Latency\nmed / p95", "Max |Δlogit|": "Max\n|Δlogit|",
           "Mean |Δlogit|": "Mean\n|Δlogit|", "KL (nats)": "KL\n(nats)", "Perplexity (Δ)": "Perplexity\n(Δ)",
           "NaN / inf": "NaN /\ninf", "Run mem": "Run\nmem", "vs fp32": "vs\nfp32"}
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

INTRO = ("Exports the loaded model to ONNX: fp32 (the reference), then fp16, int8 and int4 derived "
         "from it. Each file is run with onnxruntime on a fixed text and compared with the torch fp32 "
         "model: size on disk, memory, latency, logit differences, top-1 agreement, KL and perplexity.")


def _mb(b) -> str:
    return "–" if b is None else format_bytes(b)


def _num(v, spec) -> str:
    return "–" if v is None else spec.format(v)


class PrecisionPanel(Panel):
    panel_id = "precision"
    title = "Precision converter"
    area = "right"
    tab_with = "attention"
    order = 50

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        session.register(ConversionController())
        session.register(FormatsController())
        self.conversion = None            # the Conversion snapshot on show, or None
        self._task = None                 # the conversion's task while it runs
        self._card = None                 # the model the readout and the folder belong to
        self._derived_folder = ""         # the folder field's text when the panel chose it
        self.confirm_replace = self._ask_replace      # tests replace this
        self.calculator = MemoryCalculator(number_or_none)
        self.calculator.use_model.clicked.connect(lambda: self.calculator.use_card(self.session.card))
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_convert(), "Convert to ONNX")
        self.tabs.addTab(self.calculator, "Memory calculator")
        self.formats = FormatsView()
        self.tabs.addTab(self.formats, "Number formats")
        self.formats.weights.tensor_chosen.connect(self.show_tensor)
        self.formats.compare.compare_clicked.connect(self.compare_precisions)
        self._compared = False            # after one comparison, a new prompt compares again
        self._int8_note = ""
        name_tabs(self.tabs)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)
        session.channel_progress.connect(self._on_progress)
        session.cancel_requested.connect(self._on_cancel_requested)
        self._update_buttons()
        self.summary.setText(INTRO)
        self.session.request("precision.devices", lambda _lm, _job: device_memory(),
                             self.calculator.set_devices, lambda _msg: None, needs_model=False,
                             label="detecting device memory")
        self.session.request("precision.formats.table", lambda _lm, _job: precision.format_table(),
                             self.formats.number.set_table, lambda _msg: None, needs_model=False,
                             quiet=True, label="format table")

    @property
    def report(self):
        """The report on show (None before a conversion, and after another model is loaded)."""
        return None if self.conversion is None else self.conversion.report

    @property
    def _running(self) -> bool:
        return self._task is not None

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
        self.open_button = OpenFolderButton()
        name_buttons(self.convert_button, self.cancel_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.convert_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.open_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.stage = QLabel("Load a model, choose precisions and a folder, then Convert.")
        self.stage.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.hide()

        # The form sits above the results, so the table and the chart get the whole width.
        prec_row.insertWidget(prec_row.count() - 1, self.per_channel)
        folder_row.addLayout(buttons)
        form = QFormLayout()
        form.addRow("Precisions", prec_row)
        form.addRow("Folder", folder_row)
        top = QWidget()
        llay = QVBoxLayout(top)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addLayout(form)
        llay.addWidget(self.progress_bar)
        llay.addWidget(self.stage)
        llay.addWidget(self.message)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([HEADERS.get(c, c) for c in COLUMNS])
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

        chart = self.chart = PrecisionChart()

        results = QSplitter(Qt.Horizontal)
        results.setChildrenCollapsible(False)
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
        col = QVBoxLayout(page)
        col.setContentsMargins(2, 2, 2, 2)
        col.addWidget(top)
        col.addWidget(results, 1)
        return page


    # --- model ---------------------------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        """Another model: its folder, an empty readout, no warning about the previous one."""
        self._update_buttons()
        if card is None or card is self._card:    # a failed load re-announces the current model
            return
        self._card = card
        folder = self.folder.text().strip()
        if not folder or folder == self._derived_folder:
            self._derived_folder = default_folder(card.name)
            self.folder.setText(self._derived_folder)
        if not self._running:
            self._clear_readout()
            self.stage.setText("Choose precisions and a folder, then Convert.")
        self.calculator.use_card(card)
        self._compared = False
        self.formats.weights.clear()
        self.formats.compare.clear()
        self.session.send(FORMATS, "tensors", {}, self._show_tensors, self._formats_failed,
                          label="listing weights")

    # --- number formats: weights and the prompt at each precision ----------------------------
    def _show_tensors(self, infos) -> None:
        chosen = precision.weights.default_tensor(infos)
        self.formats.weights.set_tensors(infos, chosen)
        if chosen:
            self.show_tensor(chosen)

    def show_tensor(self, name: str) -> None:
        """Histogram and per-format errors of the weight tensor ``name`` (on the worker)."""
        if name and self.session.card is not None:
            self.session.send(FORMATS, "tensor", {"name": name}, self.formats.weights.set_stats,
                              self._formats_failed, channel=FORMATS + ".tensor", coalesce=True,
                              label="weight statistics")

    def int8_file(self):
        """The converter's int8 ONNX file for the loaded model: this session's conversion, or
        one in the folder field whose report names the model; None when there is none."""
        card = self.session.card
        if card is None:
            return None
        row = self.report.row("int8") if self.report is not None else None
        if row is not None and row.error is None:
            return str(precision.converted_file(self.report.out, "int8"))
        found = precision.converted_file(self.folder.text().strip(), "int8", card.ref or card.name)
        return str(found) if found else None

    def compare_precisions(self) -> bool:
        if self.session.card is None or not self.session.prompt.strip():
            self.formats.compare.set_status("Load a model and type a prompt first.", error=True)
            return False
        onnx = self.int8_file()
        self._int8_note = (f"int8: {onnx}." if onnx else "No int8 ONNX file yet: convert with int8 checked "
                           "(Convert to ONNX tab) to add it.")
        self._compared = True
        self.formats.compare.set_status("Running the prompt at fp32, fp16, bf16" + (", int8…" if onnx else "…"))
        self.session.send(FORMATS, "compare", {"text": self.session.prompt, "target": self.session.target,
                                               "onnx": onnx}, self._show_comparison, self._compare_failed,
                          coalesce=True, label="comparing precisions")
        return True

    def _show_comparison(self, cmp) -> None:
        self.formats.compare.set_result(cmp, self._int8_note)

    def _compare_failed(self, message: str) -> None:
        self.formats.compare.set_status(message, error=True)

    def _formats_failed(self, message: str) -> None:
        self.formats.weights.info.setText(f"<span style='color:#d03030'>{escape(message)}</span>")

    def on_trace_changed(self, trace) -> None:
        """A new prompt: compare again if the user compared once and is looking."""
        if trace is not None and self._compared and self.tabs.currentWidget() is self.formats:
            self.compare_precisions()

    def _clear_readout(self) -> None:
        self.conversion = None
        self.table.clearSpans()
        self.table.setRowCount(0)
        self.summary.setText(INTRO)
        self.chart.set_rows(None)
        self.message.hide()
        self.progress_bar.setValue(0)

    def _update_buttons(self) -> None:
        has_model = self.session.card is not None
        chosen = any(cb.isChecked() for cb in self.checks.values())
        self.convert_button.setEnabled(has_model and chosen and bool(self.folder.text().strip()) and not self._running)
        self.cancel_button.setEnabled(self._running)
        self.open_button.set_folder(self.report.out if self.report is not None and not self._running else None)
        self.per_channel.setEnabled(self.checks["int8"].isChecked())
        if not has_model and not self._running:
            self.convert_button.setToolTip("Load a model first")
        else:
            self.convert_button.setToolTip("Export and measure the chosen precisions")

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose an empty output folder", lab_settings.last_folder())
        if path:
            self.folder.setText(path)

    # --- conversion ---------------------------------------------------------------------------
    def selected_precisions(self) -> list[str]:
        return [p for p, cb in self.checks.items() if cb.isChecked()]

    def start_conversion(self) -> bool:
        out = self.folder.text().strip()
        precisions = self.selected_precisions()
        if self.session.card is None or not out or not precisions or self._running:
            return False
        force = False
        try:
            precision.check_output_folder(out, force=False)
        except precision.FolderNotEmpty as err:
            if not self.confirm_replace(err.holds):        # the dialog is the GUI's --force
                return False
            force = True
        except LabError as err:
            self._show_message(str(err), error=True)
            return False
        self.message.hide()
        self.progress_bar.setValue(0)
        self.stage.setText("Starting…")
        self._task = self.session.send(
            CHANNEL, "convert", {"out": out, "precisions": tuple(precisions), "force": force,
                                 "per_channel": self.per_channel.isChecked()},
            self._on_done, self._on_failed, label="converting to ONNX")
        self._update_buttons()
        return True

    def cancel_conversion(self) -> None:
        """The panel's Cancel; Esc and Run ▸ Cancel reach the job through the session."""
        if self._running:
            self.session.cancel(CHANNEL)

    def _on_cancel_requested(self, channel: str) -> None:
        if self._running and channel in ("", CHANNEL):
            self.stage.setText("Cancelling… (the exporter finishes its current step first)")

    def _ask_replace(self, text: str) -> bool:
        answer = QMessageBox.question(
            self, "Replace files?", text + "\n\nReplace the lab's ONNX files and report there? "
            "Other files in the folder are left alone.", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_progress(self, channel: str, fraction: float, stage: str) -> None:
        if channel != CHANNEL or not self._running:
            return
        if self._task.job.cancelled:      # keep saying "Cancelling…" until the job stops
            return
        self.progress_bar.setValue(int(fraction * 1000))
        self.stage.setText(stage)

    def _on_done(self, conversion) -> None:
        too_late = self._task is not None and self._task.job.cancelled
        self._task = None
        self.conversion = conversion
        report = conversion.report
        self.progress_bar.setValue(1000)
        self.stage.setText(("The cancel came after the files were written: " if too_late else "")
                           + f"Wrote {len(report.rows)} file(s) and report.json to {report.out}")
        self._show_report(report)
        self._update_buttons()

    def _on_failed(self, message: str) -> None:
        self._task = None
        self.progress_bar.setValue(0)
        if message.startswith("Cancelled"):
            self.stage.setText("Cancelled: the output folder was left as it was (no partial files).")
        else:
            self.stage.setText("The conversion stopped; nothing was written.")
            self._show_message(message, error=True)
        self._update_buttons()

    def _show_message(self, text: str, error: bool = False) -> None:
        lab_theme.tint(self.message, "error" if error else "warn")
        self.message.setText(text)
        self.message.show()

    # --- the readout -------------------------------------------------------------------------
    def _show_report(self, report) -> None:
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
        lines += [f"<span style='color:{lab_theme.tone('warn')}'>{escape(n)}</span>" for n in report.notes]
        self.summary.setText("<br>".join(lines))
        self.chart.set_rows(report.rows)

    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.precision``: ``view`` (convert, memory, formats), ``params`` (a
        count for the memory calculator, e.g. 1e9 or "7B"), ``dtype`` (inference precision),
        ``value`` (the number in the formats view), ``compare`` (true: compare the precisions)."""
        calc = self.calculator
        if settings.get("view") in VIEWS:
            self.tabs.setCurrentIndex(VIEWS.index(settings["view"]))
        if "value" in settings:
            self.formats.number.set_value(settings["value"])
        if settings.get("compare"):
            self.compare_precisions()
        if "params" in settings:
            self.tabs.setCurrentIndex(1)
            calc.set_params(settings["params"])
        if settings.get("dtype") and calc.infer_dtype.findText(str(settings["dtype"])) >= 0:
            calc.infer_dtype.setCurrentText(str(settings["dtype"]))
        calc.update_calculator()

    def sizeHint(self):
        """A bottom strip: wide and short, so the views above keep most of the height."""
        return QSize(1200, 300)

    # --- selftest ----------------------------------------------------------------------------------
    def selftest_ready(self) -> bool:
        return (self.session.card is not None and self.calculator.estimate is not None
                and self.formats.number.has_table and self.formats.weights.stats is not None)

    def export_views(self, folder: Path) -> list[Path]:
        """The tab on show as ``precision.png``, and the number formats tab as
        ``precision-formats.png`` (drawn from the tab's own widget)."""
        paths = super().export_views(folder)
        path = Path(folder) / f"{self.panel_id}-formats.png"
        shown = self.tabs.currentIndex()
        self.tabs.setCurrentWidget(self.formats)      # laid out at the tab's size, then back
        for _ in range(3):    # the scroll area settles its bars over a few layout passes
            QCoreApplication.sendPostedEvents(None, QEvent.LayoutRequest)
        try:
            saved = self.formats.grab().save(str(path), "PNG")
        finally:
            self.tabs.setCurrentIndex(shown)
        if not saved:
            raise OSError(f"could not save {path.name}")
        return paths + [path]


def _signed(v: float) -> str:
    return "±0.000" if abs(v) < 5e-4 else f"{v:+.3f}"
