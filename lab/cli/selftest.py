"""tvlab selftest: open the window offscreen, load a model, trace a prompt, and save a
PNG of every panel plus the whole window. Exits 0 only if all of that worked."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "selftest"
HELP = "headless check: render every panel on the default model and save PNGs"

DEFAULT_PROMPT = "The teacher taught the students with the book."


def add_arguments(p):
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--model", default=None, help="model to use (default: the lab's default model)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each stage")
    p.add_argument("--json", action="store_true")


def _wait(app, done, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if done():
            return True
        time.sleep(0.01)
    return False


def _is_blank(img) -> bool:
    if img.isNull() or img.width() < 8 or img.height() < 8:
        return True
    small = img.scaled(32, 32)
    colors = {small.pixel(x, y) for x in range(32) for y in range(32)}
    return len(colors) < 3


def run(args) -> int:
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".tvlab-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"Cannot write PNGs to {out}: {err.strerror or err}.") from None
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("TVLAB_SETTINGS_DIR", tempfile.mkdtemp(prefix="tvlab-selftest-"))
    from PySide6.QtGui import QImage

    from lab.core import models
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow

    app = application()
    win = MainWindow(restore=False)
    win.resize(1600, 1000)
    win.show()
    errors: list[str] = []
    win.session.error.connect(errors.append)
    ref = args.model or models.DEFAULT_MODEL
    t0 = time.monotonic()
    win.load_model(ref, "cpu", "fp32")
    if not _wait(app, lambda: win.session.card is not None or errors, args.timeout) or errors:
        win.close()
        raise InputError(f"selftest could not load {ref}: {errors[0] if errors else 'timed out'}")
    win.session.set_prompt(args.prompt, immediate=True)
    if not _wait(app, lambda: win.session.trace is not None or errors, args.timeout) or errors:
        win.close()
        raise InputError(f"selftest could not capture a trace: {errors[0] if errors else 'timed out'}")
    ready = _wait(app, lambda: not win.session.busy and all(p.selftest_ready() for p in win.panels.values()),
                  args.timeout)
    not_ready = [pid for pid, p in win.panels.items() if not p.selftest_ready()]
    files, problems = [], []
    for pid, panel in win.panels.items():
        win.show_panel(pid)
        _wait(app, lambda: False, 0.15)
        try:    # <panel_id>.png, and any further views the panel draws (e.g. another tab)
            paths = panel.export_views(out)
        except OSError as err:
            problems.append(f"{pid}: {err}")
            continue
        for path in paths:
            if Path(path).suffix.lower() == ".png" and _is_blank(QImage(str(path))):
                problems.append(f"{pid}: {Path(path).name} rendered blank")
            files.append(str(path))
    for cls in win.docked_classes():   # bring each tab group's first panel to the front
        if not cls.tab_with:
            win.docks[cls.panel_id].raise_()
    _wait(app, lambda: False, 0.3)
    win_img = win.grab().toImage()
    win_path = out / "window.png"
    if not win_img.save(str(win_path), "PNG"):
        problems.append("window: could not save")
    files.append(str(win_path))
    if not ready:
        problems.append(f"panels not ready: {', '.join(not_ready)}")
    problems += [f"error shown: {e}" for e in errors]
    card = win.session.card
    win.close()
    report = {"ok": not problems, "model": card.ref if card else ref, "files": files,
              "problems": problems, "seconds": round(time.monotonic() - t0, 2)}
    if args.json:
        print_json(report)
    else:
        for f in files:
            print(f)
        for p in problems:
            print(f"problem: {p}")
    if problems:
        print(f"tvlab: error: selftest failed: {problems[0]}", file=sys.stderr)
        return 1
    return 0
