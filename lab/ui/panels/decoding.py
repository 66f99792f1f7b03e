"""Step-through decoding: one token at a time, with every sampling control visible.

The decode lives beside the worker, in a ``DecodeController`` (lab.ui.controllers.decoding):
every button sends it one operation with the current settings (start, step, back, branch,
go to a branch, or only re-filter) and draws the immutable snapshot that comes back. The
panel keeps only widgets and view state: the last snapshot, the step in focus and a
``Phase``. Run is a chain of single steps, so it animates, stops within one step (Stop,
Esc, Run ▸ Cancel) and leaves the GUI and the worker free between tokens.

(Over 500 lines: it wires the controls, the four views and the keys of one workflow; the
views themselves live in lab.ui.widgets.)
"""
from __future__ import annotations

from enum import Enum
from typing import Optional

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lab.core.sampling import SamplingSettings
from lab.ui import theme as lab_theme
from lab.ui.controllers.conversion import default_folder
from lab.ui.controllers.decoding import DecodeController
from lab.ui.panels.base import Panel
from lab.ui.widgets.control_names import name_buttons, name_tabs
from lab.ui.widgets.decode_compare import DecodeCompareView
from lab.ui.widgets.decode_text import DecodeText
from lab.ui.widgets.decode_tree import DecodeTree
from lab.ui.widgets.prob_bars import CandidateBars, DrawStrip, StepChart
from lab.ui.widgets.prompt_helper import PromptHelper
from lab.ui.widgets.sampling_controls import SamplingControls
from lab.ui.widgets.tree_dict import tree_widget_dict
from lab.ui.widgets.waterfall_view import WaterfallView

CHANNEL = DecodeController.name
STOP_TEXT = {"eos": "stopped: end-of-sequence", "max": "stopped: max new tokens", "filled": "every mask is filled"}


#: Why Run does nothing at the end of a decode (snapshot.stop), said in the note.
STOPPED = {"max": "Run stops here: the decode has reached “max new tokens”.",
           "eos": "Run stops here: the model chose end-of-sequence.",
           "filled": "Every mask is filled."}


class Phase(Enum):
    NO_MODEL = "no model"
    DEFAULTS = "reading a new model's defaults"   # its first decode starts when they are in the controls
    IDLE = "idle"
    RUNNING = "running"                           # a Run: each step's result sends the next step


class DecodingPanel(Panel):
    panel_id = "decoding"
    title = "Step-through decoding"
    area = "right"
    tab_with = "attention"
    order = 40

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.card = None
        self.phase = Phase.NO_MODEL
        self.snapshot = None               # DecodeSnapshot, FillSnapshot or NoDecode on screen
        self._focus: Optional[int] = None  # the node (decode) or mask index (fill) shown; None: the newest
        session.register(DecodeController())
        self._build()
        self._reset_timer = QTimer(self, singleShot=True, interval=400)
        self._reset_timer.timeout.connect(self._reset_if_stale)
        self._view_timer = QTimer(self, singleShot=True, interval=60)
        self._view_timer.timeout.connect(self._refilter)
        self._run_timer = QTimer(self, singleShot=True)
        self._run_timer.timeout.connect(self._continue_run)
        session.prompt_changed.connect(self._prompt_changed)
        session.cancel_requested.connect(self._cancel_requested)
        self._enable(False)

    # --- construction -------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = SamplingControls()
        self.controls.changed.connect(self._settings_changed)
        self.controls.use_defaults.clicked.connect(self._load_defaults)

        self.step_btn = QPushButton("Step")
        self.step_btn.setToolTip("Choose one token")
        self.run_btn = QPushButton("Run")
        self.run_btn.setToolTip("Step until max new tokens or end-of-sequence (click again to stop)")
        self.back_btn = QPushButton("Back")
        self.back_btn.setToolTip("Undo one step (the branch stays in the tree)")
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("Start again from the prompt")
        name_buttons(self.step_btn, self.run_btn, self.back_btn, self.reset_btn)
        self.speed = QSpinBox(minimum=0, maximum=2000, value=120, singleStep=50, suffix=" ms")
        self.speed.setToolTip("Pause between tokens while running (the animation)")
        # Keys while the decoding view is shown: F10 step, F5 run / stop, Shift+F10 back.
        for button, key in ((self.step_btn, "F10"), (self.run_btn, "F5"), (self.back_btn, "Shift+F10")):
            button.setShortcut(QKeySequence(key))
            button.setToolTip(f"{button.toolTip()} ({key})")
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
        self.follow.setToolTip("For encoder-decoder models, show the cross-attention of the newest token "
                               "(the attention view traces the decoded text; your target text stays as it is)")
        self.follow.toggled.connect(self._follow)
        buttons.addWidget(self.follow)
        buttons.addStretch(1)

        self.status = QLabel("Load a model to decode.")
        self.status.setWordWrap(True)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lab_theme.tint(self.note, "warn")
        self.note.hide()

        self.text = DecodeText()
        self.text.step_clicked.connect(self.show_step)
        self.chart = StepChart()
        self.chart.step_clicked.connect(self.show_step)
        self.bars = CandidateBars()
        self.bars.candidate_clicked.connect(self.force)
        self.bars.setToolTip("Click a candidate to choose it instead: a new branch")
        self.draw = DrawStrip()
        self.step_title = QLabel()
        self.step_title.setWordWrap(True)
        self.step_title.setStyleSheet("font-weight: bold;")
        self._fit_step_title()

        # right-hand tabs: waterfall, branches, prompt helper
        self.waterfall = WaterfallView()
        self.tree = DecodeTree()
        self.tree.node_clicked.connect(self.goto)
        self.helper = PromptHelper()
        self.helper.use_requested.connect(self._use_prompt)
        self.helper.parts_changed.connect(self._count_tokens)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.waterfall, "Waterfall")
        self.tabs.addTab(self.tree, "Branches")
        self.tabs.addTab(self.helper, "Prompt helper")
        self.compare = DecodeCompareView()
        self.compare.spec_chosen.connect(self._compare_with)
        self.tabs.addTab(self.compare, "Compare")
        name_tabs(self.tabs)

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
        lay.addWidget(self.controls)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addWidget(self.note)
        lay.addWidget(split, 1)

    def sizeHint(self) -> QSize:
        return QSize(900, 860)

    def _fit_step_title(self) -> None:
        """Room for the step's title on two lines: a wrapped label's height is not in the
        layout's minimum, and the bars below would be drawn over."""
        self.step_title.setMinimumHeight(2 * self.step_title.fontMetrics().lineSpacing() + 2)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:
            self._fit_step_title()

    # --- settings -----------------------------------------------------------------------
    def settings(self) -> SamplingSettings:
        return self.controls.settings()

    def apply_lesson(self, settings: dict) -> None:
        """A lesson's ``panels.decoding``: any SamplingSettings field (strategy, temperature,
        top_k, top_p, min_p, repetition_penalty, max_new_tokens, stop_at_eos, seed)."""
        from dataclasses import fields, replace

        changes = {k: v for k, v in settings.items() if k in {f.name for f in fields(SamplingSettings)}}
        if changes:
            self.controls.set_settings(replace(self.settings(), **changes).validated())

    def _settings_changed(self) -> None:
        if self._has_decode():
            self._view_timer.start()

    def _load_defaults(self) -> None:
        """Ask for the model's generation defaults (Model defaults, a new model). The phase, not
        the request, carries a new model's first decode: a later request (Model defaults)
        replaces this one and still starts it."""
        if self.card is not None:
            self.session.send(CHANNEL, "defaults", {}, self._got_defaults, self._defaults_failed,
                              channel=f"{CHANNEL}.defaults", label="reading generation defaults")

    def _defaults_failed(self, message: str) -> None:
        self._failed(message)
        self._start_after_defaults()

    def _got_defaults(self, d) -> None:
        self.controls.show_defaults(d)
        self._start_after_defaults()

    def _start_after_defaults(self) -> None:
        if self.phase is Phase.DEFAULTS:
            self.phase = Phase.IDLE
            self.reset()

    # --- session signals ---------------------------------------------------------------------
    def on_model_changed(self, card) -> None:
        """Nothing of the previous model stays: its decode, charts, tree and notes go."""
        self.card = card
        self._stop_run()
        self._reset_timer.stop()
        self._view_timer.stop()
        self.snapshot = None
        self._focus = None
        self._clear_views()
        self._show_note("")
        self.compare.set_model(card, default_folder(card.name) if card is not None else None)
        self.status.setText("Load a model to decode." if card is None else f"Reading {card.name}'s generation defaults…")
        self.phase = Phase.NO_MODEL if card is None else Phase.DEFAULTS
        self._enable(card is not None)
        if card is None:
            return
        # A masked LM fills the masks it is given: no end-of-sequence, no length to cap,
        # no decoder for the attention panel to follow.
        generates = card.kind != "encoder-only"
        self.controls.set_generates(generates)
        self.follow.setEnabled(generates)
        self._load_defaults()
        self.helper.count()

    def on_trace_changed(self, trace) -> None:
        """A trace of the decode being followed: select the newest token's cross-attention."""
        snap = self.snapshot
        if (trace is None or not self._following(snap) or trace.kind != "encoder-decoder"
                or trace.target_text != snap.text):
            return
        toks = trace.target_tokens
        idx = len(toks) - 1
        if idx > 0 and trace.target_ids is not None and int(trace.target_ids[-1]) in snap.eos_ids:
            idx -= 1   # the tokenizer appended </s>: the newest generated token is the one before it
        self.session.select(stack="cross", token=max(0, idx))

    def _following(self, snap) -> bool:
        return (snap is not None and snap.kind == "decode" and snap.seq2seq and bool(snap.timeline)
                and self.follow.isChecked())

    def _follow(self, *_) -> None:
        """The attention view traces the decoded text while "attention follows" is on; the
        user's target text is never touched."""
        snap = self.snapshot
        self.session.follow_decode(snap.text if self._following(snap) else "")

    def _prompt_changed(self, text: str) -> None:
        if text != self.decoded_prompt:
            self._stop_run()
            self._reset_timer.start()

    def _reset_if_stale(self) -> None:
        """The typing pause is over: start a decode unless this prompt's is already on screen
        (a new model's first decode may have read it in the meantime)."""
        if self.session.prompt != self.decoded_prompt:
            self.reset()

    def _cancel_requested(self, channel: str) -> None:
        """Esc, Run ▸ Cancel (every job) or a cancel of this channel: a Run stops here."""
        if channel in ("", CHANNEL):
            self._stop_run()

    def export_data(self) -> dict:
        """The decode tree as the Branches view shows it (Export session)."""
        return {"decode_tree": tree_widget_dict(self.tree)} if self.tree.topLevelItemCount() else {}

    def selftest_ready(self) -> bool:
        return self._has_decode()

    @property
    def decoded_prompt(self) -> Optional[str]:
        """The prompt of the decode on screen (None: none yet)."""
        return self.snapshot.prompt if self.snapshot is not None else None

    def _has_decode(self) -> bool:
        return self.snapshot is not None and self.snapshot.kind != "none"

    # --- operations: each one message to the controller ---------------------------------------
    def _enable(self, on: bool) -> None:
        for b in (self.step_btn, self.run_btn, self.back_btn, self.reset_btn):
            b.setEnabled(on)

    def _send(self, op: str, label: str, *, coalesce: bool = False, **args) -> None:
        args.update(settings=self.settings(), order=self.controls.order())
        self.session.send(CHANNEL, op, args, self._show, self._failed, label=label, coalesce=coalesce)

    def reset(self) -> None:
        """Start a new decode of the session's prompt (Reset, a new prompt, a new model)."""
        if self.phase in (Phase.NO_MODEL, Phase.DEFAULTS):   # a new model's defaults will reset
            return
        self._stop_run()
        self._focus = None
        self._send("reset", "starting a decode", prompt=self.session.prompt)

    def step(self) -> None:
        if not self._has_decode():
            return self.reset()
        self._focus = None
        self._send("step", "decoding one token")

    def back(self) -> None:
        if self._has_decode():
            self._stop_run()
            self._focus = None
            self._send("back", "going back one step")

    def force(self, token_id: int) -> None:
        """A candidate was clicked: choose it instead (a new branch)."""
        snap = self.snapshot
        if not self._has_decode():
            return
        self._stop_run()
        if snap.kind == "fill":
            mv = snap.views[snap.focus]
            if mv.filled_with is not None:
                self._show_note("This mask is already filled: go Back to fill it with another token.")
                return
            self._send("step", "filling a mask", position=mv.position, force=token_id)
            return
        self._focus = None
        if snap.view.chosen_id is None:     # the pending step
            self._send("step", "forcing a token", force=token_id)
        else:
            self._send("branch", "branching", node_id=snap.view.node_id, token_id=token_id)

    def goto(self, node_id: int) -> None:
        self._stop_run()
        self._focus = None
        self._send("goto", "switching branch", node_id=node_id)

    def _compare_with(self, spec) -> None:
        """The Compare combo changed: the controller opens that comparison model (closing the old)."""
        if self.card is None:
            return
        self._stop_run()
        self.session.send(CHANNEL, "compare", {"settings": self.settings(), "order": self.controls.order(),
                                               "spec": spec, "focus": self._focus},
                          self._compared, self.compare.show_error, label="opening the comparison model")

    def _compared(self, snap) -> None:
        if snap is not None:       # None: no decode yet; its first snapshot carries the comparison
            self._show(snap)

    def _refilter(self) -> None:
        """Settings changed: re-filter the cached logits of the step on screen (no model run)."""
        if self._has_decode():
            self._send("view", "re-filtering", coalesce=True, focus=self._focus)

    def show_step(self, index: int) -> None:
        """Show the step of the index-th generated token (or the index-th mask)."""
        snap = self.snapshot
        if not self._has_decode():
            return
        if snap.kind == "fill":
            self._focus = index
        elif 0 <= index < len(snap.timeline):
            self._focus = snap.timeline[index].node_id
        else:
            return
        self._send("view", "showing a step", coalesce=True, focus=self._focus)

    # --- run: a chain of single steps ------------------------------------------------------------
    def toggle_run(self) -> None:
        if self.phase is Phase.RUNNING:
            self._stop_run()
        else:
            self.run()

    def run(self) -> None:
        if self.phase is not Phase.IDLE or not self._has_decode():
            return
        if self.snapshot.stop:
            self._show_note(STOPPED.get(self.snapshot.stop, "This decode has ended.")
                            + " Press Back to go on from an earlier step, or Reset to start again.")
            return
        self.phase = Phase.RUNNING
        self.run_btn.setText("Stop")
        self.step()

    def _stop_run(self) -> None:
        self._run_timer.stop()
        if self.phase is Phase.RUNNING:
            self.phase = Phase.IDLE
            self.run_btn.setText("Run")

    def _continue_run(self) -> None:
        if self.phase is Phase.RUNNING:
            self.step()

    @property
    def running(self) -> bool:
        return self.phase is Phase.RUNNING

    # --- results --------------------------------------------------------------------------------
    def _failed(self, message: str) -> None:
        self._stop_run()
        self._show_note(message)

    def _show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _clear_views(self) -> None:
        self.bars.clear_bars()
        self.draw.clear()
        self.text.clear()
        self.tree.clear()
        self.waterfall.clear()
        self.chart.set_steps([], [], [], 0)
        self.step_title.clear()

    def _show(self, snap) -> None:
        """Draw a snapshot; during a Run, the next step follows it."""
        self.snapshot = snap
        if snap.kind == "none":
            self._show_note(snap.note)
            self.status.setText(snap.note)
            self._clear_views()
        else:
            self._show_note(" ".join(snap.notes))
            if snap.kind == "fill":
                self._show_fill(snap)
            else:
                self._show_decode(snap)
            self._show_step(snap.view, fill=snap.kind == "fill")
        self.compare.show_snapshot(snap)
        self._follow()
        if self.phase is Phase.RUNNING:
            if snap.stop or snap.kind == "none":
                self._stop_run()
            else:
                self._run_timer.start(int(self.speed.value()))

    def _show_decode(self, snap) -> None:
        tl = snap.timeline
        self.text.show_decode(snap)
        self.chart.set_steps([t.entropy_bits for t in tl], [t.p_eos for t in tl], [t.token for t in tl],
                             snap.focus_step)
        stop = STOP_TEXT.get(snap.stop, "")
        self.status.setText(
            f"{len(tl)} of {snap.max_new_tokens} new tokens · {snap.settings.describe()} · cumulative log p "
            f"{snap.cum_logprob:.2f} nats · "
            + (f"last forward {snap.ms:.1f} ms" if tl else f"prompt read in {snap.ms:.0f} ms (one pass, KV cache kept)")
            + (f" · {stop}" if stop else ""))
        self.tree.set_tree(snap.tree)

    def _show_fill(self, snap) -> None:
        self.text.show_fill(snap)
        views = snap.views
        self.chart.set_steps([mv.view.entropy_bits for mv in views], None,
                             [f"M{k + 1}" for k in range(len(views))], snap.focus + 1, x_label="mask")
        done = "every mask is filled" if snap.finished else f"{snap.fills} of {len(views)} masks filled"
        self.status.setText(f"Fill-in-the-mask ({snap.order}) · {done} · {snap.settings.describe()} · "
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
        if view.draw is not None:
            head += f" · the draw fell at u = {view.draw.u:.3f}"
        if view.refiltered:
            head += " · re-filtered with the current settings (the token was chosen with other settings)"
        self.step_title.setText(head)
        self.waterfall.set_view(view)

    # --- prompt helper ---------------------------------------------------------------------------------
    def template(self) -> tuple[str, dict]:
        return self.helper.template()

    def _use_prompt(self, text: str) -> None:
        self.session.set_prompt(text, immediate=True)

    def _count_tokens(self, parts: dict) -> None:
        if self.card is not None:
            self.session.send(CHANNEL, "count", {"parts": dict(parts)}, self._got_counts,
                              channel=f"{CHANNEL}.count", label="counting tokens")

    def _got_counts(self, counts) -> None:
        if self.card is not None:
            self.helper.show_counts(dict(counts), self.card.context or 0, self.controls.max_new.value())
