"""LessonRunner: sets the lab up for one lesson, step by step as the model and trace arrive.

A lesson (lab.core.lessons.Lesson) is applied in this order: load its model if another
one is loaded, set target and prompt, then, once the trace is in, broadcast the selection,
hand each panel its settings through ``Panel.apply_lesson(settings)`` and raise the
lesson's panel. The main window gives the runner its panels and two callables, so the
runner never reaches into the window.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional

from PySide6.QtCore import QObject, QTimer, Signal

from lab.core import lessons as core_lessons
from lab.ui.panels.base import Panel


def same_model(card, ref: str) -> bool:
    """True when ``card`` is the model ``ref`` names (the same reference or folder)."""
    if card is None:
        return False
    if card.ref == ref:
        return True
    try:
        from lab.core import models

        folder, _ = models.resolve(ref)
        return Path(card.path).resolve() == Path(folder).resolve()
    except Exception:
        return False


class LessonRunner(QObject):
    """Runs one lesson at a time; ``status`` and ``finished`` tell the lessons panel how it went."""

    status = Signal(str)              # what is happening (also export results), for the lessons panel
    started = Signal(object)          # Lesson
    finished = Signal(object, list)   # Lesson, notes (things that could not be applied)

    def __init__(self, session, panels: Mapping[str, Panel], *,
                 show_panel: Callable[[str], bool], load_model: Callable[[str], None],
                 parent: Optional[QObject] = None):
        """``show_panel(panel_id)`` shows and raises a panel's dock (False: no such dock);
        ``load_model(ref)`` loads a model the way the user would (the Model panel's device)."""
        super().__init__(parent or session)
        self.session = session
        self.panels = panels
        self.show_panel = show_panel
        self.load_model = load_model
        self.lesson: Optional[core_lessons.Lesson] = None
        self.notes: list[str] = []
        self._stage = "idle"          # idle | model | trace
        session.model_changed.connect(self._model_changed)
        session.trace_changed.connect(self._trace_changed)
        session.error.connect(self._error)

    @property
    def busy(self) -> bool:
        return self._stage != "idle"

    def start(self, lesson: core_lessons.Lesson) -> bool:
        if not lesson.ok:
            self.status.emit(lesson.problem or "This lesson cannot be used.")
            return False
        self.lesson, self.notes = lesson, []
        self.started.emit(lesson)
        self._raise(lesson.raise_panel)
        if lesson.model and not same_model(self.session.card, lesson.model):
            self._stage = "model"
            self.status.emit(f"Loading {lesson.model}…")
            self.load_model(lesson.model)
            return True
        self._model_ready()
        return True

    def _model_changed(self, card) -> None:
        if self._stage == "model" and card is not None and same_model(card, self.lesson.model):
            self._model_ready()

    def _error(self, message: str) -> None:
        if self._stage == "model":
            self._finish([f"Could not load {self.lesson.model}: {message}"])
        elif self._stage == "trace":
            self._finish([f"Could not analyse the prompt: {message}"])

    def _model_ready(self) -> None:
        lesson = self.lesson
        if self.session.card is None and lesson.model is None and lesson.prompt:
            self.notes.append("No model is loaded: load one to see this lesson's prompt analysed.")
        if lesson.prompt is not None:
            self.session.set_target(lesson.target or "")   # the prompt panel follows the session
            needs_trace = self.session.card is not None
            self._stage = "trace" if needs_trace else "idle"
            if needs_trace:
                self.status.emit("Analysing the prompt…")
            self.session.set_prompt(lesson.prompt, immediate=True)
            if needs_trace and self.session.trace is not None and self.session.prompt == lesson.prompt \
                    and not self.session.busy:
                # Same prompt as before: set_prompt did not start a new capture.
                self.session.capture()
            if not needs_trace:
                self._finish()
        elif lesson.selection and self.session.trace is not None:
            self._apply_selection(self.session.trace)
            self._finish()
        else:
            self._finish()

    def _trace_changed(self, trace) -> None:
        if self._stage != "trace" or trace is None or self.session.prompt != self.lesson.prompt:
            return
        # After the session's own selection clamp for the new trace has gone out.
        QTimer.singleShot(0, lambda tr=trace: self._selection_then_finish(tr))

    def _selection_then_finish(self, trace) -> None:
        if self._stage != "trace":
            return
        self._apply_selection(trace)
        self._finish()

    def _apply_selection(self, trace) -> None:
        sel = dict(self.lesson.selection)
        if not sel:
            return
        changes = {}
        stack = sel.get("stack", self.session.selection.stack)
        if stack not in trace.attentions:
            self.notes.append(f"This model has no {stack!r} attention; showing {trace.stacks[0]!r}.")
            stack = trace.stacks[0]
        changes["stack"] = stack
        if "layer" in sel:
            n = trace.layers(stack)
            if sel["layer"] >= n:
                self.notes.append(f"Layer {sel['layer']} does not exist (the model has {n}); showing the last.")
            changes["layer"] = min(sel["layer"], n - 1)
        if "head" in sel:
            n = trace.heads(stack)
            if sel["head"] >= n:
                self.notes.append(f"Head {sel['head']} does not exist (the model has {n}); showing the last.")
            changes["head"] = min(sel["head"], n - 1)
        if "token" in sel:
            tokens = list(trace.query_tokens(stack))
            i = core_lessons.resolve_token(tokens, sel["token"])
            if i is None:
                self.notes.append(f"The prompt has no token {sel['token']!r}; no token is selected.")
            else:
                changes["token"] = i
        self.session.select(**changes)

    def _apply_panels(self, lesson) -> None:
        for pid, settings in lesson.panels.items():
            panel = self.panels.get(pid)
            if panel is None:
                self.notes.append(f"This lab has no {pid!r} panel, so its settings were skipped.")
                continue
            try:
                panel.apply_lesson(dict(settings))
            except Exception as err:   # a panel that does not take these settings: say so, go on
                self.notes.append(f"The {panel.title or pid} panel could not apply {settings}: {err}")

    def _raise(self, pid: Optional[str]) -> None:
        self.show_panel("lessons")
        if pid and not self.show_panel(pid):
            self.notes.append(f"This lab has no {pid!r} panel to show.")

    def _finish(self, extra: Optional[list[str]] = None) -> None:
        self._stage = "idle"
        if not extra and self.lesson is not None:
            # Last, so that what a panel does on a new model or trace (its defaults) is
            # already done: the worker answers in order.
            self._apply_panels(self.lesson)
        self.notes += extra or []
        if self.lesson is not None:
            self._raise(self.lesson.raise_panel if not extra else None)
        self.status.emit("Ready: follow the steps below." if not self.notes else " ".join(self.notes))
        self.finished.emit(self.lesson, list(self.notes))
