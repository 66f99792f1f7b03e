"""Session: the current model, prompt, trace and selection, shared by every panel.

Panels call ``set_prompt``/``load_model``/``request`` and listen to the signals; they
write back only selections, which the session broadcasts so the views stay linked.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal, Slot

from lab.ui.worker import ModelWorker, Task, WorkerThread


@dataclass(frozen=True)
class Selection:
    stack: str = "self"
    layer: int = 0
    head: int = 0
    token: int = -1        # index into the stack's query tokens; -1 = none


class Session(QObject):
    model_loading = Signal(str)              # reference being loaded
    model_changed = Signal(object)           # ModelCard
    prompt_changed = Signal(str)
    target_changed = Signal(str)
    trace_changed = Signal(object)           # Trace or None
    selection_changed = Signal(object)       # Selection
    busy_changed = Signal(bool, str)         # busy, label
    progress = Signal(float, str)
    error = Signal(str)                      # a message for the user
    notice = Signal(str)                     # a warning the user should see (not an error)

    _submit = Signal(object)

    def __init__(self, parent: Optional[QObject] = None, trace_delay_ms: int = 250):
        super().__init__(parent)
        self.card = None
        self.prompt = ""
        self.target = ""
        self.trace = None
        self.selection = Selection()
        self._callbacks: dict[int, tuple[Callable, Optional[Callable]]] = {}
        self._latest: dict[str, int] = {}
        self._running: dict[int, Task] = {}
        self._quiet: set[int] = set()           # ids of quiet tasks (see request)
        self._worker = ModelWorker()
        self._thread = WorkerThread(self._worker)
        self._submit.connect(self._worker.run_task, Qt.QueuedConnection)
        self._worker.started.connect(self._on_started)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.model_replaced.connect(self._on_model_replaced)
        self._worker.skipped.connect(lambda task_id, channel: self._finish(task_id))
        self._thread.start()
        # Qt aborts the process when a running QThread is destroyed. Whatever ends this
        # session (close, the event loop ending, garbage collection, interpreter exit),
        # its worker thread is stopped first.
        self._stop_thread = weakref.finalize(self, WorkerThread.stop, self._thread)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._trace_timer = QTimer(self, singleShot=True, interval=trace_delay_ms)
        self._trace_timer.timeout.connect(self.capture)

    # --- requests -----------------------------------------------------------------
    def request(self, channel: str, fn: Callable, on_done: Callable[[Any], None],
                on_error: Optional[Callable[[str], None]] = None, *, label: str = "",
                needs_model: bool = True, coalesce: bool = True, replaces_model: bool = False,
                quiet: bool = False) -> Task:
        """Run ``fn(loaded_model, job)`` on the worker; ``on_done(result)`` on the GUI thread.

        A ``quiet`` task (a status poll, a device list) does not make the session busy:
        no progress bar, no Cancel button, nothing for selftest or a lesson to wait on."""
        task = Task(channel=channel, fn=fn, label=label or channel, needs_model=needs_model,
                    coalesce=coalesce, replaces_model=replaces_model)
        if quiet:
            self._quiet.add(task.id)
        self._latest[channel] = task.id
        self._worker.note_latest(channel, task.id)
        self._callbacks[task.id] = (on_done, on_error)
        self._running[task.id] = task
        self._submit.emit(task)
        return task

    def cancel(self, channel: Optional[str] = None) -> None:
        for task in list(self._running.values()):
            if channel is None or task.channel == channel:
                task.job.cancel()

    @property
    def busy(self) -> bool:
        return any(task_id not in self._quiet for task_id in self._running)

    @Slot(int, str, str)
    def _on_started(self, task_id: int, channel: str, label: str) -> None:
        if task_id not in self._quiet:
            self.busy_changed.emit(True, label)

    @Slot(int, float, str)
    def _on_progress(self, task_id: int, fraction: float, stage: str) -> None:
        if task_id not in self._quiet:
            self.progress.emit(fraction, stage)

    def _finish(self, task_id: int):
        was_busy = self.busy
        self._running.pop(task_id, None)
        self._quiet.discard(task_id)
        cbs = self._callbacks.pop(task_id, None)
        if was_busy and not self.busy:
            self.busy_changed.emit(False, "")
        return cbs

    def _is_current(self, task_id: int, channel: str) -> bool:
        return self._latest.get(channel) == task_id

    @Slot(int, str, object)
    def _on_finished(self, task_id: int, channel: str, result: Any) -> None:
        cbs = self._finish(task_id)
        if cbs and self._is_current(task_id, channel):
            cbs[0](result)

    @Slot(int, str, str)
    def _on_failed(self, task_id: int, channel: str, message: str) -> None:
        task = self._running.get(task_id)
        cbs = self._finish(task_id)
        if not cbs or not self._is_current(task_id, channel):
            return
        if cbs[1] is not None:
            cbs[1](message)
        elif not (task and task.job.cancelled):
            self.error.emit(message)

    # --- the model -------------------------------------------------------------------
    def load_model(self, ref: str, device: str = "cpu", dtype: str = "fp32",
                   max_memory: Optional[dict] = None) -> Task:
        from lab.core import models

        self.model_loading.emit(ref)
        return self.request(
            "load", lambda _lm, job: models.load(ref, device, dtype, job, max_memory=max_memory),
            lambda card: None,
            self._on_load_failed, label=f"loading {ref}", needs_model=False, replaces_model=True)

    def _on_load_failed(self, message: str) -> None:
        self.error.emit(message)
        if self.card is not None:   # the previous model is still loaded: say so
            self.model_changed.emit(self.card)

    @Slot(object)
    def _on_model_replaced(self, card) -> None:
        self.card = card
        for note in card.notes:
            self.notice.emit(note)
        self.trace = None
        self.model_changed.emit(card)
        self.trace_changed.emit(None)
        if self.prompt:
            self.capture()

    # --- prompt and trace ---------------------------------------------------------------
    def set_prompt(self, text: str, *, immediate: bool = False) -> None:
        if text == self.prompt and self.trace is not None:
            return
        self.prompt = text
        self.prompt_changed.emit(text)
        if immediate:
            self.capture()
        else:
            self._trace_timer.start()

    def set_target(self, text: str) -> None:
        if text == self.target:
            return
        self.target = text
        self.target_changed.emit(text)
        self._trace_timer.start()

    def capture(self) -> Optional[Task]:
        self._trace_timer.stop()
        if self.card is None or not self.prompt:
            return None
        from lab.core import trace as core_trace

        text, target = self.prompt, self.target or None
        return self.request("trace", lambda lm, job: core_trace.capture(lm, text, target, job=job),
                            self._on_trace, label="capturing a trace")

    def _on_trace(self, trace) -> None:
        self.trace = trace
        for w in trace.warnings:
            self.notice.emit(w)
        stack = self.selection.stack if self.selection.stack in trace.attentions else trace.stacks[0]
        sel = self.selection
        n_layers, n_heads = trace.layers(stack), trace.heads(stack)
        n_tok = len(trace.query_tokens(stack))
        self.selection = replace(sel, stack=stack, layer=min(sel.layer, n_layers - 1),
                                 head=min(sel.head, n_heads - 1),
                                 token=sel.token if sel.token < n_tok else n_tok - 1)
        self.trace_changed.emit(trace)
        self.selection_changed.emit(self.selection)

    # --- selection ----------------------------------------------------------------------
    def select(self, **changes) -> None:
        new = replace(self.selection, **changes)
        if new != self.selection:
            self.selection = new
            self.selection_changed.emit(new)

    def shutdown(self) -> None:
        """Cancel every job, stop the worker thread, and drop the callbacks of jobs still
        queued (they hold panels, which may be gone when a late result would arrive)."""
        self.cancel()
        self._trace_timer.stop()
        self._stop_thread()
        self._callbacks.clear()
        self._running.clear()
        self._quiet.clear()
