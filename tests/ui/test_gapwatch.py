"""GapWatch (lab.bench.gaps) names where the GUI thread stood during a gap, and what the
other threads were doing meanwhile (idle ones left out)."""
import threading
import time

from PySide6.QtCore import QTimer

from lab.bench.gaps import GapWatch


def hold_the_gui_thread():
    time.sleep(0.3)


def test_a_gap_is_measured_and_charged_to_its_sites(qtbot):
    stop = threading.Event()

    def busy_elsewhere():
        while not stop.is_set():
            sum(range(1000))

    def idle_elsewhere():
        stop.wait()

    threads = [threading.Thread(target=busy_elsewhere), threading.Thread(target=idle_elsewhere)]
    for t in threads:
        t.start()
    watch = GapWatch(threshold_ms=50).start()
    try:
        qtbot.wait(50)
        done = []
        QTimer.singleShot(0, lambda: (hold_the_gui_thread(), done.append(1)))
        qtbot.waitUntil(lambda: bool(done), timeout=5000)
        qtbot.wait(50)
    finally:
        watch.stop()
        stop.set()
        for t in threads:
            t.join()
    assert watch.worst_ms >= 250
    assert any("hold_the_gui_thread" in site for site, _ms in watch.top(3))
    others = [site for site, _ms in watch.top_others(10)]
    assert any("busy_elsewhere" in site for site in others)
    assert not any("idle_elsewhere" in site or "wait" in site.split()[-1] for site in others)
