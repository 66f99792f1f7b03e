"""A progress and cancel handle that long core functions accept.

Core functions take an optional ``job`` and call ``job.progress(fraction, stage)`` and
``job.check()`` between units of work. The UI adapts it to Qt signals; the CLI and the
tests use it as is (or pass ``None``: ``Job.ensure`` gives a fresh one).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from lab.core.errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class Job:
    def __init__(self, on_progress: Optional[ProgressCallback] = None):
        self._cancel = threading.Event()
        self._on_progress = on_progress
        self.fraction = 0.0
        self.stage = ""

    @staticmethod
    def ensure(job: Optional["Job"]) -> "Job":
        return job if job is not None else Job()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise Cancelled if the user asked to stop."""
        if self._cancel.is_set():
            raise Cancelled()

    def progress(self, fraction: float, stage: str = "") -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        if stage:
            self.stage = stage
        if self._on_progress is not None:
            self._on_progress(self.fraction, self.stage)
        self.check()
