"""tvlab startup: how long a cold start takes, measured from the process's own start.

Counts everything a user waits for: the bundle's bootloader, imports, the main window
shown, and the default model loaded and ready. Works the same from a checkout, a pip
install or the PyInstaller bundle (``dist/tvlab/tvlab startup``), so the figure in the
README is the one a workshop machine sees. Offscreen unless a display is set.
"""
from __future__ import annotations

import os
import time

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "startup"
HELP = "measure cold start: process start to window shown and model loaded"


def add_arguments(p):
    p.add_argument("--model", default=None, help="model to load (default: the lab's default model)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--floor", action="store_true",
                   help="measure the floor instead: import torch, transformers and PySide6 and load "
                        "the same model with transformers, no window (run it from the bundle for its own floor)")


def _age_linux(pid: int) -> float:
    """Seconds since process ``pid`` started, from /proc (10 ms steps). psutil's create_time
    adds the boot time, which Linux gives in whole seconds: up to a second off."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        start_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
    with open("/proc/uptime", "rb") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _process_start() -> float:
    """Seconds since the epoch at which this process (the bundle's bootloader) started."""
    import sys

    pid = os.getpid()
    try:
        import psutil

        proc = psutil.Process()
        # A one-folder PyInstaller bundle on Linux runs in one process; where a bootloader
        # parent exists (onefile, macOS .app), start from the parent.
        parent = proc.parent()
        if parent is not None and getattr(sys, "frozen", False) and parent.exe() == proc.exe():
            proc, pid = parent, parent.pid
        if sys.platform.startswith("linux"):
            return time.time() - _age_linux(pid)
        return proc.create_time()
    except Exception:
        return time.time()


def _floor(args, t_proc: float) -> int:
    """What any such app pays: the heavy imports and transformers loading the model."""
    import PySide6.QtWidgets  # noqa: F401
    import torch  # noqa: F401
    import transformers

    from lab.core import models

    ref = args.model or models.DEFAULT_MODEL
    folder, _ = models.resolve(ref)
    transformers.AutoTokenizer.from_pretrained(str(folder))
    transformers.AutoModel.from_pretrained(str(folder))
    report = {"model": ref, "floor_loaded_s": round(time.time() - t_proc, 2)}
    if args.json:
        print_json(report)
    else:
        print(f"floor: {ref} loaded by transformers after {report['floor_loaded_s']} s (from process start)")
    return 0


def run(args) -> int:
    t_proc = _process_start()
    if args.floor:
        return _floor(args, t_proc)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    os.environ.setdefault("TVLAB_SETTINGS_DIR", tempfile.mkdtemp(prefix="tvlab-startup-"))
    from lab.core import models
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow

    app = application()
    win = MainWindow(restore=False)
    win.show()
    app.processEvents()
    t_shown = time.time()
    errors: list[str] = []
    win.session.error.connect(errors.append)
    ref = args.model or models.DEFAULT_MODEL
    win.load_model(ref, "cpu", "fp32")
    end = time.monotonic() + args.timeout
    while win.session.card is None and not errors and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)
    app.processEvents()
    t_loaded = time.time()
    # Let the panels' follow-up work (defaults, thumbnails, fits) finish before closing.
    idle_end = time.monotonic() + 30
    while win.session.busy and time.monotonic() < idle_end:
        app.processEvents()
        time.sleep(0.01)
    win.close()   # stops the worker thread (the session also does at exit, whatever happens)
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(10000)
    if win.session.card is None:
        raise InputError(f"startup could not load {ref}: {errors[0] if errors else 'timed out'}")
    report = {"model": ref, "window_shown_s": round(t_shown - t_proc, 2),
              "model_loaded_s": round(t_loaded - t_proc, 2)}
    if args.json:
        print_json(report)
    else:
        print(f"window shown after {report['window_shown_s']} s; {ref} loaded after {report['model_loaded_s']} s "
              "(from process start)")
    return 0
