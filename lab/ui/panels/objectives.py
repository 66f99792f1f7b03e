"""Objectives panel: the training example each pre-training objective makes of the
prompt (causal LM, masked LM, span corruption) and the loaded model's own loss on it,
token by token. A thin shell around ``ObjectivesView``; the work runs on the worker
(``lab.core.objectives.analyse``) and follows the loaded model's kind."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout

from lab.ui.panels.base import Panel
from lab.ui.widgets.objectives_view import UNITS, ObjectivesView
from lab.ui.widgets.token_views import note

DEBOUNCE_MS = 150


class ObjectivesPanel(Panel):
    panel_id = "objectives"
    title = "Objectives"
    area = "right"
    tab_with = "attention"
    order = 25

    def __init__(self, session, parent=None):
        super().__init__(session, parent)
        self.view = ObjectivesView()
        self.error = note(tone="error")
        self.error.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.error)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        session.prompt_changed.connect(lambda _text: self._timer.start())
        session.target_changed.connect(lambda _text: self._timer.start())
        self.view.seed_changed.connect(lambda _seed: self._timer.start())

    @property
    def report(self):
        return self.view.report

    def on_model_changed(self, card) -> None:
        self.error.hide()
        self.view.clear("" if card is not None else "Load a model to see its training objectives.")
        if card is not None:
            self.refresh()

    def refresh(self) -> None:
        """Build the examples and score the prompt on the worker (the newest request wins)."""
        self._timer.stop()
        if self.session.card is None:
            return
        text, target, seed = self.session.prompt or "", self.session.target or None, self.view.seed.value()
        if not text:
            self.view.clear("Type a prompt: its training examples and the model's loss appear here.")
            return

        def work(lm, job):
            from lab.core import objectives

            return objectives.analyse(lm, text, target, seed=seed, job=job)

        self.session.request("objectives", work, self._show, self._failed, label="objectives and loss")

    def _show(self, report) -> None:
        self.error.hide()
        self.view.show_report(report)

    def _failed(self, message: str) -> None:
        self.view.clear()
        self.error.setText(message)
        self.error.show()

    # --- protocol -----------------------------------------------------------------------
    def apply_lesson(self, settings: dict) -> None:
        """``panels.objectives``: ``seed`` (whole number), ``unit`` (nats or bits)."""
        if settings.get("unit") in UNITS:
            self.view.unit.setCurrentText(settings["unit"])
        if "seed" in settings:
            seed = settings["seed"]
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise ValueError("objectives 'seed' must be a whole number from 0")
            self.view.seed.setValue(seed)

    def lesson_state(self) -> dict:
        return {"seed": self.view.seed.value(), "unit": self.view.unit.currentText()}

    def export_data(self) -> dict:
        return {"objectives": self.report.to_json()} if self.report is not None else {}

    def restore_defaults(self) -> None:
        self.view.unit.setCurrentText(UNITS[0])
        self.view.seed.setValue(0)

    def take_focus(self) -> None:
        self.view.seed.setFocus()

    def selftest_ready(self) -> bool:
        card = self.session.card
        return card is not None and self.report is not None and self.report.model == card.name
