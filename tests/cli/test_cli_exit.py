"""The lab's processes end with a clean exit status: no os._exit, no Qt abort at teardown.

Qt aborts a process (SIGABRT, "QThread: Destroyed while thread ... is still running")
when a running QThread is destroyed; the Session stops its worker thread whatever ends
it (closing the window, the event loop ending, garbage collection, interpreter exit).
"""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, tmp_path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TVLAB_SETTINGS_DIR=str(tmp_path / "settings"))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))


def _clean(proc) -> None:
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "QThread" not in proc.stderr and "Fatal" not in proc.stderr, proc.stderr[-2000:]


def test_startup_exits_cleanly_without_os_exit(tvlab, tiny_gpt2):
    import lab.cli.startup as startup

    assert "_exit" not in Path(startup.__file__).read_text(encoding="utf-8")
    for _ in range(2):
        proc = tvlab("startup", "--model", tiny_gpt2, "--json")
        _clean(proc)
        assert '"model_loaded_s"' in proc.stdout


@pytest.mark.parametrize("how", ["session", "window", "window-fails"])
def test_a_session_never_shut_down_does_not_abort_the_process(tmp_path, how):
    proc = _python(f"""
        import gc
        from lab.ui.app import application
        app = application()
        how = {how!r}
        if how == "session":
            from lab.ui.session import Session
            s = Session()
            del s
        elif how == "window":
            from lab.ui.main_window import MainWindow
            w = MainWindow(restore=False)
            del w
        else:   # a panel fails while the window is built: the session's thread is running
            from lab.ui.main_window import MainWindow
            from lab.ui.panels.lessons import LessonsPanel
            def fail(self, *args, **kwargs):
                raise RuntimeError("no panel")
            LessonsPanel.__init__ = fail
            try:
                MainWindow(restore=False)
            except RuntimeError:
                pass
        gc.collect()
        app.processEvents()
        print("done")
    """, tmp_path)
    _clean(proc)
    assert proc.stdout.strip() == "done"


def test_gui_exits_cleanly_when_the_event_loop_ends_while_busy(tmp_path, tiny_gpt2):
    proc = _python(f"""
        from PySide6.QtCore import QTimer
        from lab.ui import app as lab_app
        app = lab_app.application()
        QTimer.singleShot(1500, app.quit)
        raise SystemExit(lab_app.run(model={str(tiny_gpt2)!r}, prompt="The teacher taught the students"))
    """, tmp_path)
    _clean(proc)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_process_start_is_read_to_the_tick_not_to_the_boot_second():
    """psutil's create_time adds a boot time Linux gives in whole seconds, which put up to a
    second into every start-up figure; the age from /proc is exact to a clock tick."""
    from lab.cli.startup import _age_linux, _process_start

    mine = _age_linux(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert 0 <= _age_linux(child.pid) <= mine       # born after this process
    finally:
        child.communicate(b"")
    assert _process_start() <= time.time() - mine + 0.05
