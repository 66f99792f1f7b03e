"""Step-through decoding: one token at a time, with every sampling control visible.

The decode itself (``lab.core.decoding.DecodeSession`` or, for masked LMs,
``FillMaskSession``) lives on the worker thread; every button sends one request that
applies the current settings, does one operation (step, back, branch, go to a branch,
or just re-filter) and returns a plain snapshot that this panel draws. Run is a chain
of single steps, so it animates, stays cancellable at every step, and leaves the GUI
and the worker free between tokens.
"""
from __future__ import annotations

from html import escape
from typing import Callable, Optional

from PySide6.QtCore import QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QSizePolicy, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from lab.core.sampling import GREEDY, SAMPLE, SOURCE, SamplingSettings
from lab.ui.panels.base import Panel
from lab.ui.widgets.prob_bars import CandidateBars, DrawStrip, StepChart, WaterfallChart, prob_color
from lab.ui.widgets.tree_dict import tree_widget_dict

CHANNEL = "decoding"
STOP_TEXT = {"eos": "stopped: end-of-sequence", "max": "stopped: max new tokens", "filled": "every mask is filled"}
MODES = ("zero-shot", "one-shot", "few-shot")


def build_prompt(mode: str, instruction: str, examples: list[tuple[str, str]], query: str) -> tuple[str, dict]:
    """The course's zero/one/few-shot template; returns (prompt, {part: text}) for the context bar."""
    n = {"zero-shot": 0, "one-shot": 1, "few-shot": len(examples)}[mode]
    shots = "\n\n".join(f"Input: {a}\nOutput: {b}" for a, b in examples[:n])
    q = f"Input: {query}\nOutput:"
    parts = {"instruction": instruction.strip(), "examples": shots, "query": q}
    return "\n\n".join(p for p in parts.values() if p), parts


def parse_examples(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        if "=>" in line:
            a, b = line.split("=>", 1)
            if a.strip():
                out.append((a.strip(), b.strip()))
    return out


class ContextBar(QWidget):
    """How much of the context window the instruction, examples and query take."""

    COLORS = {"instruction": QColor(90, 130, 200), "examples": QColor(240, 140, 40), "query": QColor(60, 170, 90),
              "new tokens": QColor(200, 200, 200)}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts: dict[str, int] = {}
        self.context = 0
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def set_counts(self, counts: dict[str, int], context: int) -> None:
        self.counts, self.context = dict(counts), int(context or 0)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(300, 22)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = self.rect().adjusted(0, 2, -1, -2)
        p.fillRect(r, QColor(235, 235, 235))
        total = self.context or max(1, sum(self.counts.values()))
        x = float(r.left())
        for name, n in self.counts.items():
            w = r.width() * min(1.0, n / total)
            p.fillRect(QRectF(x, r.top(), w, r.height()), self.COLORS.get(name, QColor(150, 150, 150)))
            x += w
        p.setPen(QColor(120, 120, 120))
        p.drawRect(r)
        p.end()


class DecodingPanel(Panel):
    panel_id = "decoding"
    title = "Step-through decoding"
    area = "right"
    tab_with = "attention"
    order = 40

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.card = None
        self._dec = None              # DecodeSession / FillMaskSession, touched only on the worker
        self._defaults_pending = False  # a new model's generation defaults are on their way
        self._snap: Optional[dict] = None
        self._focus: Optional[int] = None
        self._running = False
        self._awaiting_step = False
        self.decoded_prompt: Optional[str] = None   # the prompt of the decode on screen
        self._follow_text = ""
        self._loading_defaults = False
        self._build()
        self._reset_timer = QTimer(self, singleShot=True, interval=400)
        self._reset_timer.timeout.connect(self._reset_if_stale)
        self._view_timer = QTimer(self, singleShot=True, interval=60)
        self._view_timer.timeout.connect(self._refilter)
        # A timer object, not QTimer.singleShot(ms, callable): with PySide6 6.12 on Python 3.11
        # thousands of singleShot callables ended in "none_dealloc" (a refcount bug) in the tests.
        self._run_timer = QTimer(self, singleShot=True)
        self._run_timer.timeout.connect(self._continue_run)
        self._count_timer = QTimer(self, singleShot=True, interval=250)
        self._count_timer.timeout.connect(self._count_tokens)
        session.prompt_changed.connect(self._prompt_changed)
        self._enable(False)

    # --- construction -------------------------------------------------------------------
    def _build(self) -> None:
        self.strategy = QComboBox()
        self.strategy.addItem("greedy (argmax)", GREEDY)
        self.strategy.addItem("sampling (multinomial)", SAMPLE)
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=5.0, singleStep=0.1, value=1.0)
        self.temperature.setToolTip("Divides the logits before softmax. 0 means greedy: always the most likely token.")
        self.temp_note = QLabel("0 = greedy")
        self.top_k = QSpinBox(minimum=0, maximum=1_000_000, value=50)
        self.top_k.setSpecialValueText("0 (off)")
        self.top_k.setToolTip("Keep the k most likely tokens (ties at the edge survive). 0 turns top-k off.")
        self.top_p = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=1.0, singleStep=0.05, value=1.0)
        self.top_p.setToolTip("Keep the smallest set of tokens whose mass reaches p (the token that crosses p "
                              "stays). 1.0 turns top-p off; 0 is not allowed.")
        self.min_p = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.01, value=0.0)
        self.min_p.setToolTip("Remove tokens below min-p x the top token's probability. 0 turns it off.")
        self.rep = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=10.0, singleStep=0.1, value=1.0)
        self.rep.setToolTip("Repetition penalty (CTRL): divides positive logits of tokens already in the text. "
                            "1.0 turns it off.")
        self.max_new = QSpinBox(minimum=1, maximum=100_000, value=20)
        self.max_new.setToolTip("Stop after this many new tokens (an end-of-sequence token counts). "
                                "Clamped to the model's context window.")
        self.stop_eos = QCheckBox("stop at EOS")
        self.stop_eos.setChecked(True)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Seed of the torch.Generator: the same seed and settings give the same tokens.")
        self.fill_order = QComboBox()
        self.fill_order.addItem("left to right", "left-to-right")
        self.fill_order.addItem("most confident first", "most-confident")
        self.defaults_label = QLabel()
        self.defaults_label.setWordWrap(True)
        self.defaults_label.setStyleSheet("color: #666;")
        self.defaults_label.setToolTip(SOURCE)
        self.use_defaults = QPushButton("Model defaults")
        self.use_defaults.setToolTip("Put back the model's own generation settings")
        self.use_defaults.clicked.connect(self._use_model_defaults)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel("Strategy"), 0, 0)
        grid.addWidget(self.strategy, 0, 1)
        grid.addWidget(QLabel("Temperature"), 0, 2)
        tl = QHBoxLayout()
        tl.addWidget(self.temperature)
        tl.addWidget(self.temp_note)
        grid.addLayout(tl, 0, 3)
        grid.addWidget(QLabel("Top-k"), 0, 4)
        grid.addWidget(self.top_k, 0, 5)
        grid.addWidget(QLabel("Top-p"), 0, 6)
        grid.addWidget(self.top_p, 0, 7)
        grid.addWidget(QLabel("Max new tokens"), 1, 0)
        grid.addWidget(self.max_new, 1, 1)
        grid.addWidget(QLabel("Seed"), 1, 2)
        grid.addWidget(self.seed, 1, 3)
        grid.addWidget(self.stop_eos, 1, 4, 1, 2)
        grid.addWidget(self.use_defaults, 1, 6, 1, 2)
        self.advanced = QGroupBox("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        adv = QHBoxLayout(self.advanced)
        adv.setContentsMargins(6, 2, 6, 2)
        self._adv_widgets = [QLabel("Min-p"), self.min_p, QLabel("Repetition penalty"), self.rep,
                             QLabel("Fill order (masked LM)"), self.fill_order]
        for w in self._adv_widgets:
            adv.addWidget(w)
        adv.addStretch(1)
        self.advanced.toggled.connect(lambda on: [w.setVisible(on) for w in self._adv_widgets])
        for w in self._adv_widgets:
            w.setVisible(False)

        self.step_btn = QPushButton("Step")
        self.step_btn.setToolTip("Choose one token")
        self.run_btn = QPushButton("Run")
        self.run_btn.setToolTip("Step until max new tokens or end-of-sequence (click again to stop)")
        self.back_btn = QPushButton("Back")
        self.back_btn.setToolTip("Undo one step (the branch stays in the tree)")
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("Start again from the prompt")
        self.speed = QSpinBox(minimum=0, maximum=2000, value=120, singleStep=50, suffix=" ms")
        self.speed.setToolTip("Pause between tokens while running (the animation)")
        self.step_btn.clicked.connect(self.step)
        self.run_btn.clicked.connect(self.toggle_run)
        self.back_btn.clicked.connect(self.back)
        self.reset_btn.clicked.connect(self.reset)
        buttons = QHBoxLayout()
        for b in (self.step_btn, self.run_btn, self.back_btn, self.reset_btn):
            buttons.addWidget(b)
        buttons.addWidget(QLabel("pause"))
        buttons.addWidget(self.speed)
        self.follow = QCheckBox("attention follows (seq2seq)")
        self.follow.setChecked(True)
        self.follow.setToolTip("For encoder-decoder models, show the cross-attention of the newest token")
        buttons.addWidget(self.follow)
        buttons.addStretch(1)

        self.status = QLabel("Load a model to decode.")
        self.status.setWordWrap(True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #c77700;")
        self.note.hide()

        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.anchorClicked.connect(self._anchor)
        self.text.setMinimumHeight(90)
        self.text.setToolTip("Each generated token is coloured by the model's probability (red unlikely, green "
                             "likely). Click a token to show its step.")
        self.chart = StepChart()
        self.chart.step_clicked.connect(self._chart_clicked)
        self.bars = CandidateBars()
        self.bars.candidate_clicked.connect(self.force)
        self.bars.setToolTip("Click a candidate to choose it instead: a new branch")
        self.draw = DrawStrip()
        self.step_title = QLabel()
        self.step_title.setWordWrap(True)
        self.step_title.setStyleSheet("font-weight: bold;")

        # right-hand tabs: waterfall, branches, prompt helper
        self.waterfall = QTableWidget(0, 4)
        self.waterfall.setHorizontalHeaderLabels(["stage", "tokens left", "mass removed", "entropy (bits)"])
        self.waterfall.verticalHeader().setVisible(False)
        self.waterfall.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.waterfall.horizontalHeader().setStretchLastSection(True)
        self.waterfall.setEditTriggers(QTableWidget.NoEditTriggers)
        self.wf_chart = WaterfallChart()
        wf = QWidget()
        wfl = QVBoxLayout(wf)
        wfl.setContentsMargins(0, 0, 0, 0)
        wfl.addWidget(self.waterfall, 1)
        wfl.addWidget(self.wf_chart, 1)
        src = QLabel("Order as in transformers' generate(): penalties → the model's rules → temperature → top-k → "
                     "top-p → min-p; greedy applies only the penalties and rules. Rules (n-gram blocking, minimum "
                     "length, suppressed tokens...) come from the model's generation config, when it sets any.")
        src.setWordWrap(True)
        src.setStyleSheet("color: #666;")
        wfl.addWidget(src)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["branch", "tokens", "log p", "settings"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.Stretch)
        self.tree.itemClicked.connect(self._tree_clicked)
        self.tree.setToolTip("Each run of tokens between branching points; click one to switch to it (instant).")

        helper = QWidget()
        form = QFormLayout(helper)
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.setCurrentText("few-shot")
        self.instruction = QLineEdit("Translate English to French.")
        self.examples = QPlainTextEdit("sea otter => loutre de mer\ncheese => fromage\nbread => pain")
        self.examples.setToolTip("One example a line: input => output")
        self.examples.setMaximumHeight(90)
        self.query = QLineEdit("apple")
        self.use_prompt = QPushButton("Use as prompt")
        self.use_prompt.clicked.connect(self.apply_template)
        self.context_bar = ContextBar()
        self.context_label = QLabel()
        self.context_label.setWordWrap(True)
        form.addRow("Template", self.mode)
        form.addRow("Instruction", self.instruction)
        form.addRow("Examples", self.examples)
        form.addRow("Query", self.query)
        form.addRow("", self.use_prompt)
        form.addRow("Context window", self.context_bar)
        form.addRow("", self.context_label)
        for w in (self.instruction, self.query):
            w.textChanged.connect(lambda _t: self._count_timer.start())
        self.examples.textChanged.connect(lambda: self._count_timer.start())
        self.mode.currentIndexChanged.connect(lambda _i: self._count_timer.start())

        self.tabs = QTabWidget()
        self.tabs.addTab(wf, "Waterfall")
        self.tabs.addTab(self.tree, "Branches")
        self.tabs.addTab(helper, "Prompt helper")

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.step_title)
        ll.addWidget(self.bars, 1)
        ll.addWidget(self.draw)
        bottom = QSplitter(Qt.Horizontal)
        bottom.addWidget(left)
        bottom.addWidget(self.tabs)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        top = QWidget()
        tl2 = QVBoxLayout(top)
        tl2.setContentsMargins(0, 0, 0, 0)
        tl2.addWidget(self.text, 1)
        tl2.addWidget(self.chart)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        lay.addLayout(grid)
        lay.addWidget(self.advanced)
        lay.addWidget(self.defaults_label)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.note)
        lay.addWidget(split, 1)

        for w in (self.temperature, self.top_p, self.min_p, self.rep):
            w.valueChanged.connect(self._settings_changed)
        for w in (self.top_k, self.max_new, self.seed):
            w.valueChanged.connect(self._settings_changed)
        self.strategy.currentIndexChanged.connect(self._settings_changed)
        self.fill_order.currentIndexChanged.connect(self._settings_changed)
        self.stop_eos.toggled.connect(self._settings_changed)

    def sizeHint(self) -> QSize:
        return QSize(900, 860)

    # --- settings -----------------------------------------------------------------------
    def settings(self) -> SamplingSettings:
        return SamplingSettings(strategy=self.strategy.currentData(), temperature=round(self.temperature.value(), 4),
                                top_k=int(self.top_k.value()), top_p=round(self.top_p.value(), 6),
                                min_p=round(self.min_p.value(), 6), repetition_penalty=round(self.rep.value(), 4),
                                max_new_tokens=int(self.max_new.value()), stop_at_eos=self.stop_eos.isChecked(),
                                seed=int(self.seed.value())).validated()

    def set_settings(self, s: SamplingSettings) -> None:
        self._loading_defaults = True
        try:
            self.strategy.setCurrentIndex(max(0, self.strategy.findData(s.strategy)))
            self.temperature.setValue(s.temperature)
            self.top_k.setValue(s.top_k)
            self.top_p.setValue(s.top_p)
            self.min_p.setValue(s.min_p)
            self.rep.setValue(s.repetition_penalty)
            self.max_new.setValue(s.max_new_tokens)
            self.stop_eos.setChecked(s.stop_at_eos)
            self.seed.setValue(s.seed)
        finally:
            self._loading_defaults = False
        self._settings_changed()

    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.decoding``: any SamplingSettings field (strategy, temperature,
        top_k, top_p, min_p, repetition_penalty, max_new_tokens, stop_at_eos, seed)."""
        from dataclasses import fields, replace

        changes = {k: v for k, v in settings.items() if k in {f.name for f in fields(SamplingSettings)}}
        if changes:
            self.set_settings(replace(self.settings(), **changes).validated())

    def _settings_changed(self, *_) -> None:
        s = self.settings()
        sampling_on = s.strategy == SAMPLE
        for w in (self.top_k, self.top_p, self.min_p):
            w.setEnabled(sampling_on)
        self.temp_note.setText("0 = greedy" + (" → greedy now" if sampling_on and s.temperature == 0 else ""))
        self.temp_note.setStyleSheet("color: #c77700;" if sampling_on and s.temperature == 0 else "color: #666;")
        if self._loading_defaults:
            return
        if self._dec is not None:
            self._view_timer.start()

    def _use_model_defaults(self) -> None:
        """The Model defaults button (a plain method: a lambda holding ``self`` would keep the
        panel in a reference cycle that Python may then collect on the worker thread)."""
        self._load_defaults()

    def _load_defaults(self, *, then_reset: bool = False) -> None:
        """Ask the worker for the model's generation defaults; with ``then_reset`` (a new
        model) the first decode starts only once they are in the controls, so it runs with
        the model's settings, not the previous ones. The flag, not the request, carries the
        reset: a later request on the same channel (Model defaults) replaces this one."""
        if self.card is None:
            return
        from lab.core import sampling as core_sampling

        self._defaults_pending = self._defaults_pending or then_reset
        self.session.request(f"{CHANNEL}.defaults", lambda lm, job: core_sampling.model_defaults(lm.model),
                             self._got_defaults, self._defaults_failed, label="reading generation defaults")

    def _defaults_failed(self, message: str) -> None:
        self._failed(message)
        self._reset_after_defaults()

    def _reset_after_defaults(self) -> None:
        if self._defaults_pending:
            self._defaults_pending = False
            self.reset()

    def _got_defaults(self, d) -> None:
        self.set_settings(d.settings)
        s = d.settings
        model_set = [k for k, v in d.sources.items() if v == "model"]
        self.defaults_label.setText(
            f"Model defaults: {s.describe()}, max new tokens {s.max_new_tokens} — "
            + (f"from the model's generation config ({', '.join(model_set)}), the rest transformers' defaults"
               if model_set else "transformers' defaults (the model's generation config sets none)")
            + ("" if not d.notes else " · " + " ".join(d.notes)))
        self.fill_order.setVisible(self.advanced.isChecked())
        self._reset_after_defaults()

    # --- session signals ---------------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        self.card = card
        self._stop_run()
        self._defaults_pending = False
        self._dec = None
        self._snap = None
        self._enable(card is not None)
        if card is None:
            return
        # A masked LM fills the masks it is given: no end-of-sequence, no length to cap,
        # no decoder for the attention panel to follow.
        generates = card.kind != "encoder-only"
        for w in (self.stop_eos, self.max_new, self.follow):
            w.setEnabled(generates)
            w.setToolTip("" if generates else "Does not apply to a masked LM: it fills the [MASK] tokens in the prompt.")
        self._load_defaults(then_reset=True)
        self._count_tokens()

    def on_trace_changed(self, trace) -> None:
        if (trace is None or not self._follow_text or trace.kind != "encoder-decoder"
                or trace.target_text != self._follow_text or not self.follow.isChecked()):
            return
        toks = trace.target_tokens
        idx = len(toks) - 1
        if idx > 0 and trace.target_ids is not None and int(trace.target_ids[-1]) in (self._snap or {}).get("eos_ids", []):
            idx -= 1   # the tokenizer appended </s>: the newest generated token is the one before it
        self.session.select(stack="cross", token=max(0, idx))

    def _prompt_changed(self, text: str) -> None:
        if text != self.decoded_prompt:
            self._stop_run()
            self._reset_timer.start()

    def _reset_if_stale(self) -> None:
        """The typing pause is over: start a decode unless this prompt's is already on screen
        (a new model's first decode may have read it in the meantime)."""
        if self.session.prompt != self.decoded_prompt or self._snap is None:
            self.reset()

    def export_data(self) -> dict:
        """The decode tree as the Branches view shows it (Export session)."""
        return {"decode_tree": tree_widget_dict(self.tree)} if self.tree.topLevelItemCount() else {}

    def selftest_ready(self) -> bool:
        return self._snap is not None

    # --- operations (each one request; the decode object lives on the worker) ---------------
    def _enable(self, on: bool) -> None:
        for b in (self.step_btn, self.run_btn, self.back_btn, self.reset_btn):
            b.setEnabled(on)

    def _request(self, op: Callable, label: str, *, coalesce: bool = False, focus_latest: bool = True) -> None:
        settings = self.settings()
        order = self.fill_order.currentData()
        focus = None if focus_latest else self._focus

        def fn(lm, job):
            from lab.core import decoding

            dec = self._dec
            if dec is None or dec.lm is not lm:
                from lab.core.errors import InputError

                raise InputError("Press Reset to start a decode of the current prompt with this model.")
            if isinstance(dec, decoding.FillMaskSession):
                dec.set_settings(settings, order)
            else:
                dec.set_settings(settings)
            op(dec, job)
            if isinstance(dec, decoding.FillMaskSession):
                return decoding.snapshot_fill(dec, focus, settings)
            return decoding.snapshot_decode(dec, focus, settings)

        self.session.request(CHANNEL, fn, self._show, self._failed, label=label, coalesce=coalesce)

    def reset(self) -> None:
        """Start a new decode of the session's prompt (Reset, a new prompt, a new model)."""
        if self.card is None or self._defaults_pending:   # a new model's defaults will reset
            return
        self._stop_run()
        prompt = self.session.prompt
        settings = self.settings()
        order = self.fill_order.currentData()
        self._focus = None

        def fn(lm, job):
            from lab.core import decoding

            notes = []
            if lm.kind == "encoder-only":
                note = decoding.mask_note(lm, prompt)
                mask = getattr(lm.tokenizer, "mask_token", None)
                if (mask and mask not in prompt) or "language-model head" in note:
                    self._dec = None
                    return {"kind": "none", "note": note or "This model cannot fill in masks.", "prompt": prompt}
                dec = decoding.FillMaskSession(lm, prompt, settings, order=order, job=job)
                snap = decoding.snapshot_fill(dec, None, settings)
            else:
                dec = decoding.DecodeSession(lm, prompt, settings, job=job)
                snap = decoding.snapshot_decode(dec, None, settings)
            self._dec = dec      # set here, on the worker, so requests queued behind this one see it
            snap["notes"] = notes + snap["notes"]
            snap["prompt"] = prompt
            return snap

        self.session.request(CHANNEL, fn, self._reset_done, self._failed, label="starting a decode")

    def _reset_done(self, snap: dict) -> None:
        self.decoded_prompt = snap.get("prompt")
        if snap.get("kind") == "none":
            self._snap = None
            self._show_note(snap["note"])
            self.status.setText(snap["note"])
            self._clear_views()
            return
        self._show(snap)

    def step(self) -> None:
        if self._dec is None:
            return self.reset()
        self._focus = None
        self._awaiting_step = True
        self._request(lambda dec, job: dec.step(), "decoding one token")

    def back(self) -> None:
        if self._dec is None:
            return
        self._stop_run()
        self._focus = None
        self._request(lambda dec, job: dec.back(), "going back one step")

    def force(self, token_id: int) -> None:
        """A candidate was clicked: choose it instead (a new branch)."""
        snap = self._snap
        if self._dec is None or snap is None:
            return
        self._stop_run()
        if snap["kind"] == "fill":
            mv = snap["views"][snap["focus"]]
            if mv.filled_with is not None:
                self._show_note("This mask is already filled: go Back to fill it with another token.")
                return
            pos = mv.position
            self._request(lambda dec, job: dec.step(position=pos, force=token_id), "filling a mask")
            return
        node_id = snap["view"].node_id
        pending = snap["view"].chosen_id is None
        self._focus = None
        if pending:
            self._request(lambda dec, job: dec.step(force=token_id), "forcing a token")
        else:
            self._request(lambda dec, job: dec.branch(node_id, token_id), "branching")

    def goto(self, node_id: int) -> None:
        self._stop_run()
        self._focus = None
        self._request(lambda dec, job: dec.goto(node_id), "switching branch")

    def _refilter(self) -> None:
        """Settings changed: re-filter the cached logits of the step on screen (no model run)."""
        if self._dec is None:
            return
        self._request(lambda dec, job: None, "re-filtering", coalesce=True, focus_latest=False)

    def show_step(self, index: int) -> None:
        """Show the step of the index-th generated token (or the index-th mask)."""
        snap = self._snap
        if snap is None:
            return
        if snap["kind"] == "fill":
            self._focus = index
        else:
            tl = snap["timeline"]
            if not 0 <= index < len(tl):
                return
            self._focus = tl[index].node_id
        self._request(lambda dec, job: None, "showing a step", coalesce=True, focus_latest=False)

    # --- run: a chain of single steps ------------------------------------------------------------
    def toggle_run(self) -> None:
        if self._running:
            self._stop_run()
        else:
            self.run()

    def run(self) -> None:
        if self._dec is None or (self._snap and self._snap.get("stop")):
            return
        self._running = True
        self.run_btn.setText("Stop")
        self.step()

    def _stop_run(self) -> None:
        self._run_timer.stop()
        if self._running:
            self._running = False
            self.run_btn.setText("Run")

    def _continue_run(self) -> None:
        if self._running:
            self.step()

    @property
    def running(self) -> bool:
        return self._running

    # --- results --------------------------------------------------------------------------------
    def _failed(self, message: str) -> None:
        self._stop_run()
        self._awaiting_step = False
        self._show_note(message)

    def _show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _clear_views(self) -> None:
        self.bars.clear_bars()
        self.draw.clear()
        self.text.clear()
        self.tree.clear()
        self.waterfall.setRowCount(0)

    def _show(self, snap: dict) -> None:
        self._snap = snap
        self._show_note(" ".join(snap.get("notes", [])))
        if snap["kind"] == "fill":
            self._show_fill(snap)
        else:
            self._show_decode(snap)
        self._show_step(snap["view"], fill=snap["kind"] == "fill")
        stepped, self._awaiting_step = self._awaiting_step, False
        if self._running and stepped:
            if snap.get("stop"):
                self._stop_run()
            else:
                self._run_timer.start(int(self.speed.value()))

    def _show_decode(self, snap: dict) -> None:
        tl = snap["timeline"]
        focus_step = snap["focus_step"]
        parts = [f'<span style="color:#888">{escape("".join(snap["prompt_tokens"]))}</span>']
        if snap["seq2seq"]:
            parts.append('<br><span style="color:#888">→ </span>')
        for i, item in enumerate(tl):
            bg = prob_color(item.raw_prob).name()
            border = "border-bottom: 3px solid #f08c28;" if i + 1 == focus_step else ""
            tok = escape(item.token).replace("\n", "⏎<br>") or "∅"
            tip = (f"step {i + 1}: {item.token!r} · raw p {item.raw_prob:.3f} · processed p {item.prob:.3f} · "
                   f"{item.how}")
            deco = "text-decoration: underline;" if i + 1 == focus_step else "text-decoration: none;"
            parts.append(f'<a href="s{i}" title="{escape(tip)}" style="color:#000;{deco}">'
                         f'<span style="background:{bg};{border}">{tok}</span></a>')
        self.text.setHtml("<div style='font-size:13pt; line-height:150%'>" + "".join(parts) + "</div>")
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())
        self.chart.set_steps([t.entropy_bits for t in tl], [t.p_eos for t in tl], [t.token for t in tl], focus_step)
        stop = STOP_TEXT.get(snap["stop"], "")
        s = snap["settings"]
        self.status.setText(
            f"{len(tl)} of {snap['max_new_tokens']} new tokens · {s.describe()} · cumulative log p "
            f"{snap['cum_logprob']:.2f} nats · "
            + (f"last forward {snap['ms']:.1f} ms" if tl else f"prompt read in {snap['ms']:.0f} ms (one pass, KV cache kept)")
            + (f" · {stop}" if stop else ""))
        self._fill_tree(snap["tree"])
        if snap["seq2seq"] and self.follow.isChecked() and tl:
            self._follow_text = snap["text"]
            self.session.set_target(snap["text"])

    def _show_fill(self, snap: dict) -> None:
        parts = []
        masks = {p: k for k, p in enumerate(snap["positions"])}
        for i, tok in enumerate(snap["tokens"]):
            if i in masks:
                k = masks[i]
                mv = snap["views"][k]
                if mv.filled_with is None:
                    html = f'<span style="background:#d9c8f0; border:1px solid #7a4fc0">[MASK {k + 1}]</span>'
                else:
                    ch = next((c for c in mv.view.candidates if c.chosen), None)
                    bg = prob_color(ch.raw_prob if ch else 0.5).name()
                    html = f'<span style="background:{bg}">{escape(tok)}</span>'
                deco = "underline" if k == snap["focus"] else "none"
                parts.append(f'<a href="m{k}" style="color:#000; text-decoration:{deco}">{html}</a> ')
            else:
                parts.append(f'<span style="color:#555">{escape(tok)}</span> ')
        self.text.setHtml("<div style='font-size:13pt; line-height:150%'>" + "".join(parts) + "</div>")
        views = snap["views"]
        self.chart.set_steps([mv.view.entropy_bits for mv in views], None,
                             [f"M{k + 1}" for k in range(len(views))], snap["focus"] + 1, x_label="mask")
        done = "every mask is filled" if snap["finished"] else f"{snap['fills']} of {len(views)} masks filled"
        self.status.setText(f"Fill-in-the-mask ({snap['order']}) · {done} · {snap['settings'].describe()} · "
                            "each fill re-reads the whole sentence (no KV cache in a bidirectional encoder)")
        self.tree.clear()

    def _show_step(self, view, fill: bool = False) -> None:
        self.bars.set_candidates(view.candidates, view.cumulative,
                                 view.settings.top_p if view.settings.do_sample else None, view.top_p_cut)
        self.draw.set_draw(view.candidates, view.draw)
        chosen = next((c for c in view.candidates if c.chosen), None)
        if view.chosen_id is None:
            head = "Next token: the candidates before choosing (click one to force it)"
        else:
            head = (f"Step {view.step}: chose {chosen.token!r} ({view.how}; raw p {chosen.raw_prob:.3f}, "
                    f"after processors {chosen.prob:.3f})")
        head += f" · entropy {view.entropy_bits:.2f} bits" + ("" if fill else f" · P(EOS) {view.p_eos:.3f}")
        if view.draw:
            head += f" · the draw fell at u = {view.draw['u']:.3f}"
        if view.refiltered:
            head += " · re-filtered with the current settings (the token was chosen with other settings)"
        self.step_title.setText(head)
        self.waterfall.setRowCount(len(view.stages))
        for r, st in enumerate(view.stages):
            cells = [st.name if st.applied else f"{st.name} (off)", f"{st.survivors:,}",
                     f"{st.mass_removed:.3f}" if st.applied else "—", f"{max(0.0, st.entropy_bits):.2f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(st.label if st.applied else st.note)
                if not st.applied:
                    item.setForeground(QColor(150, 150, 150))
                self.waterfall.setItem(r, c, item)
        ids = [c.id for c in view.candidates]
        self.wf_chart.set_stages([(st.name, st.probs[ids]) for st in view.stages if st.applied])

    def _fill_tree(self, root) -> None:
        self.tree.clear()

        def add(branch, parent):
            label = branch.text if branch.text else "(prompt)"
            item = QTreeWidgetItem([label.replace("\n", "⏎"), str(branch.tokens), f"{branch.cum_logprob:.2f}",
                                    branch.settings])
            item.setData(0, Qt.UserRole, branch.node_id)
            if branch.on_path:
                f = item.font(0)
                f.setBold(True)
                item.setFont(0, f)
            (parent.addChild(item) if parent is not None else self.tree.addTopLevelItem(item))
            for ch in branch.children:
                add(ch, item)

        add(root, None)
        self.tree.expandAll()

    # --- clicks ---------------------------------------------------------------------------------------
    def _anchor(self, url) -> None:
        s = url.toString()
        if s[:1] in ("s", "m") and s[1:].isdigit():
            self.show_step(int(s[1:]))

    def _chart_clicked(self, index: int) -> None:
        self.show_step(index)

    def _tree_clicked(self, item, _col) -> None:
        node_id = item.data(0, Qt.UserRole)
        if node_id is not None:
            self.goto(int(node_id))

    # --- prompt helper ---------------------------------------------------------------------------------
    def template(self) -> tuple[str, dict]:
        return build_prompt(self.mode.currentText(), self.instruction.text(),
                            parse_examples(self.examples.toPlainText()), self.query.text())

    def apply_template(self) -> None:
        text, _ = self.template()
        self.session.set_prompt(text, immediate=True)

    def _count_tokens(self) -> None:
        if self.card is None:
            return
        _, parts = self.template()
        context = self.card.context or 0
        want = self.max_new.value()

        def fn(lm, job):
            return {k: len(lm.tokenizer(v, add_special_tokens=False)["input_ids"]) if v else 0
                    for k, v in parts.items()}

        def done(counts):
            used = sum(counts.values())
            counts["new tokens"] = want
            self.context_bar.set_counts(counts, context or used + want)
            ex = counts.get("examples", 0)
            if context:
                self.context_label.setText(
                    f"instruction {counts['instruction']} + examples {ex} + query {counts['query']} = {used} of "
                    f"{context} tokens; the examples take {100 * ex / context:.1f}% of the window; "
                    f"{max(0, context - used)} left for new tokens" + (" — not enough for max new tokens!"
                                                                      if context - used < want else ""))
            else:
                self.context_label.setText(f"{used} tokens (examples {ex}); this model states no context window")

        self.session.request(f"{CHANNEL}.count", fn, done, label="counting tokens")
