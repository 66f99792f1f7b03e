"""ModelWorker: one QObject on its own QThread that owns the loaded model.

All model work (load, forward passes, decode steps, export) runs here. Each Task carries
an id and a channel; a task whose id is no longer the newest of its channel is skipped
before it runs, and the Session drops its result if it finishes late (the newest input
always wins). Exceptions become ``failed`` signals and the worker carries on.

A task is either a function ``fn(lm, job)`` or an operation on a registered controller
(``controller``, ``op``, ``args``: see lab.ui.controllers). The same class also runs the
"compute" lane, a second worker for jobs that need no model (fits), so every background
job shares one pattern: ids, channels, progress, cancel and error handling.
"""
from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from lab.core import devices, libraries
from lab.core.errors import Cancelled, LabError
from lab.core.jobs import Job

_ids = itertools.count(1)
log = logging.getLogger(__name__)


@dataclass
class Task:
    channel: str
    fn: Optional[Callable[[Any, Job], Any]] = None   # fn(loaded_model_or_None, job) -> result
    label: str = ""
    needs_model: bool = True
    coalesce: bool = True                  # skip if a newer task of the channel is queued
    replaces_model: bool = False           # the result is a LoadedModel that becomes current
    quiet: bool = False                    # a poll: does not make the session busy
    controller: Optional[str] = None       # or: controllers[controller].<op>(lm, job, **args)
    op: str = ""
    args: dict = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    job: Job = field(default_factory=Job)


class ModelWorker(QObject):
    started = Signal(int, str, str)          # id, channel, label
    progress = Signal(int, float, str)       # id, fraction, stage
    finished = Signal(int, str, object)      # id, channel, result
    failed = Signal(int, str, str)           # id, channel, message for the user
    model_replaced = Signal(object)          # ModelCard of the new current model
    skipped = Signal(int, str)               # id, channel: stale or cancelled before it ran

    def __init__(self):
        super().__init__()
        self.lm = None                        # LoadedModel, touched only on the worker thread
        self._latest: dict[str, int] = {}
        self._controllers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def register(self, controller) -> None:
        """Adopt a controller; from now on only this worker's thread touches it."""
        with self._lock:
            if controller.name in self._controllers:
                raise ValueError(f"a controller named {controller.name!r} is registered already")
            self._controllers[controller.name] = controller

    def _controller(self, name: str):
        with self._lock:
            return self._controllers[name]

    def note_latest(self, channel: str, task_id: int) -> None:
        with self._lock:
            self._latest[channel] = task_id

    def _is_stale(self, task: Task) -> bool:
        with self._lock:
            return task.coalesce and self._latest.get(task.channel, task.id) != task.id

    @Slot(object)
    def run_task(self, task: Task) -> None:
        if self._is_stale(task) or task.job.cancelled:
            self.skipped.emit(task.id, task.channel)
            return
        self.started.emit(task.id, task.channel, task.label)
        task.job._on_progress = lambda f, s: self.progress.emit(task.id, f, s)
        try:
            if task.needs_model and self.lm is None:
                raise LabError("No model is loaded yet: choose one in the Model panel.")
            if task.controller is not None:
                ctl = self._controller(task.controller)
                result = getattr(ctl, task.op)(self.lm, task.job, **task.args)
            else:
                result = task.fn(self.lm, task.job)
            if task.replaces_model:
                self.lm = result          # the old model is released here
                with self._lock:
                    controllers = list(self._controllers.values())
                for ctl in controllers:   # before any later request can reach them
                    ctl.model_replaced()
                devices.trim_heap()       # the old model's memory back to the OS
                self.model_replaced.emit(result.card)
                result = result.card
            self.finished.emit(task.id, task.channel, result)
        except Cancelled as err:
            self.failed.emit(task.id, task.channel, str(err))
        except LabError as err:
            self.failed.emit(task.id, task.channel, str(err))
        except MemoryError:
            self.failed.emit(task.id, task.channel, "Out of memory: try a smaller model, dtype or input.")
        except Exception as err:  # a bug: say so, log the traceback, keep the worker alive
            log.exception("internal error in task %r on %s", task.label or task.channel,
                          QThread.currentThread().objectName() or "a worker thread")
            self.failed.emit(task.id, task.channel,
                             f"Internal error while {task.label or task.channel}: {type(err).__name__}: {err}")


def _worker_nice(default: int = 10) -> int:
    text = os.environ.get("TVLAB_WORKER_NICE", "").strip()
    if not text:
        return default
    try:
        return max(0, min(19, int(text)))
    except ValueError:
        log.warning("TVLAB_WORKER_NICE=%r is not a whole number; using %d", text, default)
        return default


# How much lower than the GUI thread the workers run (a Linux nice value, inherited by the
# threads torch starts from the worker and by the conversion process). When the window
# needs a core to paint, it gets one; when it is idle, the workers have every core.
WORKER_NICE = _worker_nice()


def lower_priority() -> None:
    """Run the calling thread (and what it starts) below the GUI thread."""
    if WORKER_NICE <= 0:
        return
    if sys.platform.startswith("linux"):     # nice is per thread on Linux
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE))
        except OSError:
            log.warning("could not lower the worker thread's priority", exc_info=True)
    else:                                    # macOS, Windows: Qt's own thread priority
        QThread.currentThread().setPriority(QThread.LowPriority)


class WorkerThread(QThread):
    """The thread a worker lives on; stopped and joined on close."""

    def __init__(self, worker: ModelWorker, name: str = "ModelWorkerThread", preload: bool = False):
        super().__init__()
        self.setObjectName(name)
        self._preload = preload
        worker.moveToThread(self)

    def run(self) -> None:
        lower_priority()
        if self._preload:       # torch's libraries, opened without the GIL (the window keeps painting)
            try:
                libraries.preload_torch()
            except Exception:   # torch's own import does the work then
                log.exception("preloading torch's libraries failed")
        self.exec()

    def stop(self, timeout_ms: int = 10000) -> bool:
        self.quit()
        return self.wait(timeout_ms)
