"""Session: the current model, prompt, trace and selection, shared by every panel.

Panels call ``set_prompt``/``load_model``/``request``/``send`` and listen to the signals;
they write back only selections, which the session broadcasts so the views stay linked.

Two workers run the background jobs, with one pattern (lab.ui.worker): the model lane owns
the loaded model; the compute lane, started on first use, runs jobs that need no model
(fits) so they never hold up model work. Model-bound state that outlives one request
lives in controllers on a lane (lab.ui.controllers), never on a widget.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal, Slot

from lab.ui import collector
from lab.ui.worker import ModelWorker, Task, WorkerThread


@dataclass(frozen=True)
class Selection:
    stack: str = "self"
    layer: int = 0
    head: int = 0
    token: int = -1        # index into the stack's query tokens; -1 = none


def _captured_widget(fn: Callable) -> Optional[str]:
    """The name of a QObject that ``fn`` would carry onto the worker thread, if any."""
    bound = getattr(fn, "__self__", None)
    if isinstance(bound, QObject):
        return type(bound).__name__
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:       # an empty cell
            continue
        if isinstance(value, QObject):
            return type(value).__name__
    return None


def _stop_threads(threads: list) -> None:
    """Stop worker threads (a finalizer: it must not hold the session)."""
    for thread in threads:
        thread.stop()


class Session(QObject):
    model_loading = Signal(str)              # reference being loaded
    model_changed = Signal(object)           # ModelCard
    prompt_changed = Signal(str)
    target_changed = Signal(str)
    trace_changed = Signal(object)           # Trace or None
    selection_changed = Signal(object)       # Selection
    busy_changed = Signal(bool, str)         # busy, label
    progress = Signal(float, str)
    channel_progress = Signal(str, float, str)   # channel, fraction, stage: for a panel's own job
    error = Signal(str)                      # a message for the user
    notice = Signal(str)                     # a warning the user should see (not an error)
    cancel_requested = Signal(str)           # channel, or "" for every job (Esc, Run > Cancel)

    _submit = Signal(object)
    _submit_compute = Signal(object)

    def __init__(self, parent: Optional[QObject] = None, trace_delay_ms: int = 250,
                 start_workers: bool = True):
        """``start_workers=False`` queues jobs until ``start_workers()`` (the main window
        starts them after its first paint, so torch is imported while it is on screen)."""
        super().__init__(parent)
        self.card = None
        self.prompt = ""
        self.target = ""          # the user's (or a lesson's) target text; only they set it
        self.decoded = ""         # a decode a panel is stepping through, traced in place of the target
        self.trace = None
        self.selection = Selection()
        self._callbacks: dict[int, tuple[Callable, Optional[Callable]]] = {}
        self._latest: dict[str, int] = {}
        self._running: dict[int, Task] = {}
        self._worker = ModelWorker()
        self._thread = WorkerThread(self._worker, preload=True)
        self._submit.connect(self._worker.run_task, Qt.QueuedConnection)
        self._connect(self._worker)
        self._worker.model_replaced.connect(self._on_model_replaced)
        self._shut = False
        if start_workers:
            self._thread.start()
        self._compute: Optional[ModelWorker] = None      # the compute lane, made on first use
        self._compute_thread: Optional[WorkerThread] = None
        self._lanes: dict[str, str] = {}                 # controller name -> lane
        # Qt aborts the process when a running QThread is destroyed. Whatever ends this
        # session (close, the event loop ending, garbage collection, interpreter exit),
        # its worker threads are stopped first.
        self._threads = [self._thread]                   # shared with the finalizer, not self
        self._stop_threads = weakref.finalize(self, _stop_threads, self._threads)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._trace_timer = QTimer(self, singleShot=True, interval=trace_delay_ms)
        self._trace_timer.timeout.connect(self.capture)

    def start_workers(self) -> None:
        """Let the model lane run the jobs queued so far (a no-op once it runs)."""
        if not self._shut and not self._thread.isRunning() and not self._thread.isFinished():
            self._thread.start()

    def _connect(self, worker: ModelWorker) -> None:
        worker.started.connect(self._on_started)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.skipped.connect(self._on_skipped)

    def _lane(self, name: str) -> tuple[ModelWorker, Signal]:
        if name == "model":
            return self._worker, self._submit
        if self._compute is None:
            self._compute = ModelWorker()
            self._compute_thread = WorkerThread(self._compute, "ComputeWorkerThread")
            self._submit_compute.connect(self._compute.run_task, Qt.QueuedConnection)
            self._connect(self._compute)
            self._compute_thread.start()
            self._threads.append(self._compute_thread)
        return self._compute, self._submit_compute

    # --- requests -----------------------------------------------------------------
    def request(self, channel: str, fn: Callable, on_done: Callable[[Any], None],
                on_error: Optional[Callable[[str], None]] = None, *, label: str = "",
                needs_model: bool = True, coalesce: bool = True, replaces_model: bool = False,
                quiet: bool = False) -> Task:
        """Run ``fn(loaded_model, job)`` on the worker; ``on_done(result)`` on the GUI thread.

        ``fn`` must not hold a widget (or any QObject): it runs on the worker thread, and a
        widget reached from there, or released there, is a crash waiting to happen.
        A ``quiet`` task (a status poll, a device list) does not make the session busy:
        no progress bar, no Cancel button, nothing for selftest or a lesson to wait on."""
        held = _captured_widget(fn)
        if held is not None:
            raise TypeError(f"a worker function must not hold a {held}: pass plain values, "
                            "or keep the state in a controller (lab.ui.controllers)")
        task = Task(channel=channel, fn=fn, label=label or channel, needs_model=needs_model,
                    coalesce=coalesce, replaces_model=replaces_model, quiet=quiet)
        return self._submit_task(task, "model", on_done, on_error)

    def register(self, controller) -> None:
        """Hand a controller to its lane's worker (a panel does this once, at construction)."""
        worker, _ = self._lane(controller.lane)
        worker.register(controller)
        self._lanes[controller.name] = controller.lane

    def send(self, controller: str, op: str, args: Optional[dict] = None,
             on_done: Optional[Callable[[Any], None]] = None,
             on_error: Optional[Callable[[str], None]] = None, *, channel: Optional[str] = None,
             label: str = "", coalesce: bool = False, needs_model: Optional[bool] = None) -> Task:
        """Run ``controllers[controller].<op>(lm, job, **args)`` on its lane; ``on_done(snapshot)``
        on the GUI thread. ``channel`` (default: the controller's name) is what stale results
        and ``cancel(channel)`` go by."""
        lane = self._lanes.get(controller)
        if lane is None:
            raise KeyError(f"no controller named {controller!r} is registered")
        task = Task(channel=channel or controller, controller=controller, op=op, args=dict(args or {}),
                    label=label or op, needs_model=lane == "model" if needs_model is None else needs_model,
                    coalesce=coalesce)
        return self._submit_task(task, lane, on_done or (lambda _result: None), on_error)

    def _submit_task(self, task: Task, lane: str, on_done, on_error) -> Task:
        worker, submit = self._lane(lane)
        self._latest[task.channel] = task.id
        worker.note_latest(task.channel, task.id)
        self._callbacks[task.id] = (on_done, on_error)
        self._running[task.id] = task
        if task.replaces_model or (lane == "model" and not collector.settled()):
            collector.hold(task.id)     # the imports and the model's objects: collect after
        submit.emit(task)
        return task

    def cancel(self, channel: Optional[str] = None) -> None:
        """Stop running and queued jobs (all of them, or one channel's). Panels that chain jobs
        (a decoding Run) listen to ``cancel_requested`` and stop the chain too."""
        for task in list(self._running.values()):
            if channel is None or task.channel == channel:
                task.job.cancel()
        self.cancel_requested.emit(channel or "")

    @property
    def busy(self) -> bool:
        return any(not task.quiet for task in self._running.values())

    def _is_quiet(self, task_id: int) -> bool:
        task = self._running.get(task_id)
        return task is not None and task.quiet

    @Slot(int, str, str)
    def _on_started(self, task_id: int, channel: str, label: str) -> None:
        if not self._is_quiet(task_id):
            self.busy_changed.emit(True, label)

    @Slot(int, float, str)
    def _on_progress(self, task_id: int, fraction: float, stage: str) -> None:
        task = self._running.get(task_id)
        if task is None or task.quiet:
            return
        self.progress.emit(fraction, stage)
        self.channel_progress.emit(task.channel, fraction, stage)

    @Slot(int, str)
    def _on_skipped(self, task_id: int, channel: str) -> None:
        task = self._running.get(task_id)
        cbs = self._finish(task_id)
        # A cancelled job that never ran still tells its owner, so a panel waiting on it
        # (a Run, a conversion) leaves its busy state.
        if task is not None and task.job.cancelled and cbs and cbs[1] is not None \
                and self._is_current(task_id, channel):
            cbs[1]("Cancelled.")

    def _finish(self, task_id: int):
        was_busy = self.busy
        self._running.pop(task_id, None)
        collector.release(task_id)
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
        self.decoded = ""
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
        """The user's target text (encoder-decoder models); it also ends ``follow_decode``."""
        if text == self.target:
            return
        self.target = text
        self.decoded = ""
        self.target_changed.emit(text)
        self._trace_timer.start()

    def follow_decode(self, text: str) -> None:
        """Trace ``text`` as the decoder side (the decoding panel's "attention follows") without
        touching the user's target; "" stops. A model switch or a new target ends it."""
        if text == self.decoded:
            return
        self.decoded = text
        self._trace_timer.start()

    def capture(self) -> Optional[Task]:
        self._trace_timer.stop()
        if self.card is None or not self.prompt:
            return None
        from lab.core import trace as core_trace

        text, target = self.prompt, self.decoded or self.target or None
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
        """Cancel every job, stop the worker threads, and drop the callbacks of jobs still
        queued (they hold panels, which may be gone when a late result would arrive)."""
        self._shut = True
        for task in list(self._running.values()):
            task.job.cancel()
            collector.release(task.id)
        self._trace_timer.stop()
        self._stop_threads()
        self._callbacks.clear()
        self._running.clear()
