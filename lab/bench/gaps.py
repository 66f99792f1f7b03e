"""GapWatch: how long the GUI thread stops answering, and where it is when it does.

A 10 ms heartbeat timer on the GUI thread notes each beat; a watchdog thread looks every
few milliseconds and, while the last beat is older than ``threshold_ms``, samples the GUI
thread's stack (``sys._current_frames``). Each sample is charged to a call site: the
innermost frame in the lab's code and the innermost frame overall (a pyqtgraph, Qt or
torch call under it). The worst gap and the sites that held the thread longest are what
``tvlab bench ui`` and ``tvlab bench soak`` report.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from typing import Optional

_LAB = os.sep + "lab" + os.sep


def _where(frame) -> str:
    path = frame.f_code.co_filename
    if _LAB in path:
        path = "lab/" + path.split(_LAB)[-1].replace(os.sep, "/")
    else:
        path = path.split(os.sep + "site-packages" + os.sep)[-1]
    return f"{path}:{frame.f_lineno} {frame.f_code.co_name}"


def call_site(frame) -> str:
    """'lab frame → innermost frame' for a stack (the innermost alone when it is the lab's)."""
    inner = frame
    lab_frame = None
    f = frame
    while f is not None:
        if _LAB in f.f_code.co_filename and "lab/bench/" not in f.f_code.co_filename.replace(os.sep, "/"):
            lab_frame = f
            break
        f = f.f_back
    if "lab/bench/" in inner.f_code.co_filename.replace(os.sep, "/"):
        # the benchmark's own wait loop: the event loop was free, another thread held the GIL
        return "another thread held the GIL (GUI thread idle in the event loop)"
    if lab_frame is None or lab_frame is inner:
        return _where(inner)
    return f"{_where(lab_frame)} → {_where(inner)}"


def _idle(frame) -> bool:
    """A thread waiting for work: a worker thread's event loop, an idle pool thread."""
    path = frame.f_code.co_filename.replace(os.sep, "/")
    return (path.endswith("lab/ui/worker.py") and frame.f_code.co_name == "run") or \
        (path.endswith("concurrent/futures/thread.py") and frame.f_code.co_name == "_worker") or \
        (path.endswith("threading.py") and frame.f_code.co_name == "wait")


class GapWatch:
    """Start it on the GUI thread; ``stop()`` and read ``worst_ms`` and ``top(n)``."""

    def __init__(self, threshold_ms: float = 30.0, beat_ms: int = 10, poll_ms: float = 2.0):
        self.threshold = threshold_ms / 1000
        self.poll = poll_ms / 1000
        self.beats: list[float] = []
        self.worst_ms = 0.0
        self.sites: Counter = Counter()         # call site -> ms of blocking charged to it
        self.others: Counter = Counter()        # another thread's call site -> ms of gaps it was in
        self.gaps: list[tuple[float, str]] = []  # (ms, the site most seen in it), in order
        self._current: Counter = Counter()
        self._lock = threading.Lock()
        self._gui = threading.get_ident()
        self._last = time.perf_counter()
        from PySide6.QtCore import QTimer  # here, so the bench suites list on a machine without Qt

        self._timer = QTimer(interval=beat_ms)
        self._timer.timeout.connect(self._beat)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _beat(self) -> None:
        now = time.perf_counter()
        gap_ms = (now - self._last) * 1000
        self.worst_ms = max(self.worst_ms, gap_ms)
        if gap_ms > self.threshold * 1000:
            with self._lock:
                where = self._current.most_common(1)
                self._current = Counter()
            self.gaps.append((round(gap_ms, 1), where[0][0] if where else "?"))
        self._last = now

    def _watch(self) -> None:
        prev = time.perf_counter()
        while not self._stop.wait(self.poll):
            now = time.perf_counter()
            if now - self._last > self.threshold:
                frames = sys._current_frames()
                frame = frames.get(self._gui)
                if frame is not None:
                    site = call_site(frame)
                    with self._lock:
                        self.sites[site] += (now - prev) * 1000
                        self._current[site] += 1
                me = threading.get_ident()
                with self._lock:         # what the other threads were doing meanwhile
                    for tid, other in frames.items():
                        if tid not in (self._gui, me) and not _idle(other):
                            self.others[call_site(other)] += (now - prev) * 1000
            prev = now

    def start(self) -> "GapWatch":
        self._last = time.perf_counter()
        self._timer.start()
        self._thread = threading.Thread(target=self._watch, name="GapWatch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return [(site, round(ms, 1)) for site, ms in self.sites.most_common(n)]

    def top_others(self, n: int = 3) -> list[tuple[str, float]]:
        """Where the worker threads were during gaps (the one holding the interpreter lock
        is seen where it let go of it)."""
        return [(site, round(ms, 1)) for site, ms in self.others.most_common(n)]
