"""ModelWorker: one QObject on its own QThread that owns the loaded model.

All model work (load, forward passes, decode steps, export) runs here. Each Task carries
an id and a channel; a task whose id is no longer the newest of its channel is skipped
before it runs, and the Session drops its result if it finishes late (the newest input
always wins). Exceptions become ``failed`` signals and the worker carries on.
"""
from __future__ import annotations

import itertools
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from lab.core.errors import Cancelled, LabError
from lab.core.jobs import Job

_ids = itertools.count(1)


@dataclass
class Task:
    channel: str
    fn: Callable[[Any, Job], Any]          # fn(loaded_model_or_None, job) -> result
    label: str = ""
    needs_model: bool = True
    coalesce: bool = True                  # skip if a newer task of the channel is queued
    replaces_model: bool = False           # the result is a LoadedModel that becomes current
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
        self._lock = threading.Lock()
        self.gui_thread_forward_guard = threading.get_ident()

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
            result = task.fn(self.lm, task.job)
            if task.replaces_model:
                self.lm = result          # the old model is released here
                self.model_replaced.emit(result.card)
                result = result.card
            self.finished.emit(task.id, task.channel, result)
        except Cancelled as err:
            self.failed.emit(task.id, task.channel, str(err))
        except LabError as err:
            self.failed.emit(task.id, task.channel, str(err))
        except MemoryError:
            self.failed.emit(task.id, task.channel, "Out of memory: try a smaller model, dtype or input.")
        except Exception as err:  # a bug: say so, keep the worker alive
            traceback.print_exc(file=sys.stderr)
            self.failed.emit(task.id, task.channel,
                             f"Internal error while {task.label or task.channel}: {type(err).__name__}: {err}")


class WorkerThread(QThread):
    """The thread the worker lives on; stopped and joined on close."""

    def __init__(self, worker: ModelWorker):
        super().__init__()
        self.setObjectName("ModelWorkerThread")
        worker.moveToThread(self)

    def stop(self, timeout_ms: int = 10000) -> bool:
        self.quit()
        return self.wait(timeout_ms)
