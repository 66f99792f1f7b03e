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


def test_no_collection_while_a_model_loads(qtbot, monkeypatch):
    """A model load makes a million objects (torch's and transformers' imports): collecting
    among them on the GUI thread froze the window, so a load holds the collector off."""
    from lab.ui import collector

    gc_ran = []
    monkeypatch.setattr(gc, "collect", lambda *a: gc_ran.append(a) or 0)
    keeper = collector.collect_on_gui_thread(application())
    keeper.timer.stop()
    try:
        garbage = [[] for _ in range(keeper.threshold[0] * 2)]     # over the young threshold
        collector.hold("load")
        keeper.check()
        assert gc_ran == [] and collector.held()
        collector.release("load")
        keeper.check()
        assert gc_ran and not collector.held()
        del garbage
    finally:
        keeper.timer.start()

    collector.hold("forgotten")                     # a job that never ends stops holding
    monkeypatch.setattr(collector.time, "monotonic", lambda: 1e12)
    assert not collector.held()
    collector.release("forgotten")


def test_the_session_holds_the_collector_while_a_load_runs(qtbot, session, tiny_model_dir, load_and_wait):
    from lab.ui import collector

    session.load_model(str(tiny_model_dir("gpt2")))
    assert collector.held()
    qtbot.waitUntil(lambda: session.card is not None and not session.busy, timeout=60000)
    assert not collector.held()


def test_only_the_gui_thread_collector_calls_gc_collect():
    """A collection on a worker thread once deadlocked the suite (a converter's heap trim,
    the out-of-memory handler): only lab.ui.collector collects; benchmarks may, they own
    their process."""
    import ast
    from pathlib import Path

    import lab

    root = Path(lab.__file__).parent
    callers = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel in ("ui/collector.py",) or rel.startswith("bench/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "collect" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "gc":
                callers.append(f"{rel}:{node.lineno}")
    assert callers == []
