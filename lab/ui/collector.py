"""Python's cyclic garbage collector, run on the GUI thread only.

A reference cycle that holds a Qt object (a panel and the callbacks it handed out, a
widget kept by a lambda) is freed by whichever thread happens to trigger a collection.
When that is the model worker, in the middle of an ONNX export or a forward pass, the
QObject is destroyed off the GUI thread while the GUI thread destroys widgets of its own:
Qt's object mutex and the GIL then wait on each other and the lab freezes (seen in the
suite, in a conversion). So automatic collection is switched off and a timer on the GUI
thread collects instead, with Python's own thresholds. Worker threads never collect.

Once the first model is in, the imported libraries (torch, transformers: about a million
objects) and that model live as long as the process; ``settle()`` freezes them out of the
collector's sight, so a full collection stops holding the GUI thread for a third of a
second every few seconds.

While a model loads (and, before the first model, while the model lane imports torch and
transformers) the collector holds off: those imports make about a million objects, and
collecting among them on the GUI thread blocked it for most of a second. ``hold(key)`` and
``release(key)`` bracket such a job; a hold older than ``HOLD_MAX_S`` no longer counts, so
a job that never ends cannot switch collection off for good.
"""
from __future__ import annotations

import gc
import threading
import time

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500
FULL_EVERY_S = 10.0
HOLD_MAX_S = 120.0

_holds: dict[object, float] = {}      # key -> monotonic time the hold began
_holds_lock = threading.Lock()


def hold(key) -> None:
    """No collection until ``release(key)`` (or HOLD_MAX_S): a model is loading."""
    with _holds_lock:
        _holds.setdefault(key, time.monotonic())


def release(key) -> None:
    with _holds_lock:
        _holds.pop(key, None)


def held() -> bool:
    now = time.monotonic()
    with _holds_lock:
        return any(now - began < HOLD_MAX_S for began in _holds.values())


class GuiThreadCollector(QObject):
    def __init__(self, app: QCoreApplication, interval_ms: int = INTERVAL_MS):
        super().__init__(app)
        self.setObjectName("tvlab-gc")
        self.threshold = gc.get_threshold()
        self._old = 0             # objects in the oldest generation after the last full collection
        self._next_full = 0.0     # monotonic time before which no full collection is considered
        gc.disable()
        self.timer = QTimer(self, interval=interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()
        app.aboutToQuit.connect(self.timer.stop)

    def _old_grew(self) -> bool:
        """Python's own rule for full collections: only when the oldest generation grew by
        a quarter since the last one (else a big heap is walked every few seconds)."""
        return len(gc.get_objects(2)) - self._old > self._old // 4

    def check(self) -> None:
        """Collect the generations that passed their thresholds, as gc would.

        The youngest generation is judged by its size, not by ``gc.get_count()[0]``: that
        count falls with every deallocation, so a burst of frees after a worker made
        thousands of cycles can leave it under the threshold while the cycles wait
        unfreed. The older generations count collections, which only this timer makes.
        """
        if held():
            return
        counts = gc.get_count()
        now = time.monotonic()
        if counts[2] > self.threshold[2] and now >= self._next_full:
            self._next_full = now + FULL_EVERY_S     # counting the old generation costs too
            if self._old_grew():
                gc.collect(2)
                self._old = len(gc.get_objects(2))
                return
        if counts[1] > self.threshold[1]:
            gc.collect(1)
            return
        if len(gc.get_objects(0)) > self.threshold[0]:
            gc.collect(0)


def collect_on_gui_thread(app: QCoreApplication) -> GuiThreadCollector:
    """Install the collector on ``app`` once; returns it."""
    existing = app.findChild(GuiThreadCollector, "tvlab-gc")
    return existing if existing is not None else GuiThreadCollector(app)


_settled = threading.Event()


def settled() -> bool:
    return _settled.is_set()


def settle(*_args) -> bool:
    """Freeze what is alive now (gc.freeze) the first time it is called in the process; the
    main window calls it when the first model arrives. True if it froze."""
    if _settled.is_set():
        return False
    _settled.set()
    gc.freeze()
    return True
