"""Worker-side controllers: model-bound state beside the worker, addressed by name."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from PySide6.QtWidgets import QLabel

from lab.core.errors import InputError
from lab.ui.controllers import Controller


@dataclass(frozen=True)
class Snap:
    count: int
    thread: int
    model: str


class Counter(Controller):
    name = "counter"

    def __init__(self):
        self.count = 0
        self.replaced = 0

    def bump(self, lm, job, by: int = 1) -> Snap:
        self.count += by
        return Snap(self.count, threading.get_ident(), lm.card.name if lm is not None else "")

    def fail(self, lm, job) -> Snap:
        raise InputError("no such thing")

    def model_replaced(self) -> None:
        self.count = 0
        self.replaced += 1


class Summer(Controller):
    name = "summer"
    lane = "compute"

    def add(self, lm, job, values: tuple) -> float:
        assert lm is None
        return float(sum(values)), threading.get_ident()


def _wait(qtbot, box):
    qtbot.waitUntil(lambda: bool(box), timeout=30000)
    return box[0]


def test_ops_run_on_the_worker_and_state_resets_with_the_model(qtbot, session, tiny_gpt2):
    ctl = Counter()
    session.register(ctl)
    loaded = []
    session.model_changed.connect(loaded.append)
    session.load_model(str(tiny_gpt2))
    _wait(qtbot, loaded)
    got, other = [], []
    session.send("counter", "bump", {"by": 2}, other.append, channel="counter.first")
    session.send("counter", "bump", {"by": 3}, got.append)
    session.send("counter", "bump", {"by": 4}, got.append)   # same channel: the newest wins
    qtbot.waitUntil(lambda: bool(got) and bool(other), timeout=30000)
    qtbot.wait(50)
    assert [s.count for s in other] == [2]
    assert [s.count for s in got] == [9]          # ops run in order; the stale result is dropped
    assert got[0].thread != threading.get_ident()
    assert ctl.replaced == 1
    # Another model: the controller forgets the old one before any later op reaches it.
    loaded.clear()
    session.load_model(str(tiny_gpt2))
    _wait(qtbot, loaded)
    got.clear()
    session.send("counter", "bump", {}, got.append)
    assert _wait(qtbot, got).count == 1
    assert ctl.replaced == 2


def test_an_op_error_is_a_message_and_the_worker_lives_on(qtbot, session, tiny_gpt2):
    session.register(Counter())
    loaded = []
    session.model_changed.connect(loaded.append)
    session.load_model(str(tiny_gpt2))
    _wait(qtbot, loaded)
    errors, got = [], []
    session.send("counter", "fail", {}, got.append, errors.append)
    assert _wait(qtbot, errors) == "no such thing"
    session.send("counter", "bump", {}, got.append)
    assert _wait(qtbot, got).count == 1


def test_the_compute_lane_needs_no_model_and_has_its_own_thread(qtbot, session):
    session.register(Summer())
    got = []
    session.send("summer", "add", {"values": (1, 2, 3.5)}, got.append)
    total, thread = _wait(qtbot, got)
    assert total == 6.5
    assert thread not in (threading.get_ident(), None)


def test_model_ops_without_a_model_say_so(qtbot, session):
    session.register(Counter())
    errors = []
    session.send("counter", "bump", {}, None, errors.append)
    assert "No model is loaded" in _wait(qtbot, errors)


def test_unknown_controller_and_duplicate_names_are_refused(session):
    session.register(Counter())
    with pytest.raises(ValueError):
        session.register(Counter())
    with pytest.raises(KeyError):
        session.send("nobody", "bump")


def test_a_worker_function_may_not_hold_a_widget(qtbot, session):
    label = QLabel()
    qtbot.addWidget(label)
    with pytest.raises(TypeError, match="QLabel"):
        session.request("x", lambda lm, job: label.text(), lambda r: None)
    with pytest.raises(TypeError, match="QLabel"):
        session.request("x", label.text, lambda r: None)
    text = "plain values are fine"
    session.request("x", lambda lm, job: text, lambda r: None, needs_model=False)


def test_cancel_is_announced_so_chained_jobs_stop(qtbot, session):
    seen = []
    session.cancel_requested.connect(seen.append)
    session.cancel()
    session.cancel("decoding")
    assert seen == ["", "decoding"]
