"""Cycles are freed on the GUI thread only (lab.ui.collector)."""
import gc
import threading

from lab.ui.app import application
from lab.ui.collector import GuiThreadCollector


class Node:
    """A reference cycle that notes the thread that frees it."""

    freed: list = []

    def __init__(self):
        self.me = self

    def __del__(self):
        Node.freed.append(threading.get_ident())


def test_a_worker_thread_never_collects_cycles(qtbot):
    app = application()
    assert not gc.isenabled()
    assert len(app.findChildren(GuiThreadCollector)) == 1      # installed once
    Node.freed = []

    def churn():                       # a worker allocating like an ONNX export does
        for _ in range(5000):
            Node()

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(Node.freed) == 5000, timeout=10000)
    assert set(Node.freed) == {threading.get_ident()}         # all freed on the GUI thread


def test_cycles_are_freed_even_when_frees_pulled_the_count_down(qtbot):
    """gc's young count falls on every free: thousands of frees after the cycles were made
    must not hide them from the collector (the suite once timed out waiting)."""
    app = application()
    collector = app.findChild(GuiThreadCollector, "tvlab-gc")
    Node.freed = []
    ballast = [[i] for i in range(20000)]     # tracked objects, freed below
    gc.collect()                              # the ballast is old, the count is 0
    for _ in range(2000):
        Node()
    del ballast                               # 20000 frees: gc.get_count()[0] drops to 0
    assert gc.get_count()[0] < collector.threshold[0]
    collector.check()
    assert len(Node.freed) == 2000
