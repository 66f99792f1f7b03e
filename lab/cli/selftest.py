"""tvlab selftest: open the window offscreen at a size and theme, load a model, trace a
prompt, and save a PNG of every panel (and of each of its tabs) plus the whole window.
Exits 0 only if all of that worked and every view fits: no sideways scrolling in a
panel's main view at FIT_SIZE or larger, no plot data outside its view, no plot title
or axis label cut (lab.ui.fit_check)."""
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
DEFAULT_SIZE = "1600x1000"
FIT_SIZE = (1280, 800)     # from this window size on, nothing may scroll sideways


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise InputError(f"--size wants WIDTHxHEIGHT in pixels, like 1280x800, not {text!r}.") from None
    if not (640 <= w <= 8000 and 480 <= h <= 8000):
        raise InputError(f"--size {text}: width and height must be between 640x480 and 8000x8000.")
    return w, h


def add_arguments(p):
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--model", default=None, help="model to use (default: the lab's default model)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each stage")
    p.add_argument("--size", default=DEFAULT_SIZE, help=f"window size WxH (default {DEFAULT_SIZE})")
    p.add_argument("--theme", default="light", choices=("light", "dark", "high-contrast", "system"),
                   help="theme to render in (default light)")
    p.add_argument("--presenter", action="store_true",
                   help="presenter layout: larger fonts, main views large, Model dock hidden")
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


def _tab_widgets(panel):
    from PySide6.QtWidgets import QTabWidget

    return [t for t in panel.findChildren(QTabWidget) if t.count() > 1]


def _check(panel, pid: str, where: str, strict: bool) -> tuple[list[str], list[str]]:
    """(problems, notes) of one panel as shown now; sideways scrolling is a problem only
    at FIT_SIZE or larger."""
    from lab.ui import fit_check

    scrolls = [f"{where}: {m}" for m in fit_check.horizontal_scrolls(panel)]
    rest = [f"{where}: {m}" for m in fit_check.data_outside(panel) + fit_check.text_cut(panel)]
    allowed = [f"{m} (allowed below {FIT_SIZE[0]}x{FIT_SIZE[1]})" for m in scrolls]
    return (scrolls + rest, []) if strict else (rest, allowed)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def run(args) -> int:
    width, height = parse_size(args.size)
    strict = width >= FIT_SIZE[0] and height >= FIT_SIZE[1]
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

    from lab.core import models
    from lab.ui import theme as lab_theme
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow
    from lab.ui.workshop import presenter

    app = application()
    lab_theme.apply(app, args.theme)
    win = MainWindow(restore=False)
    win.resize(width, height)
    win.show()
    if args.presenter:
        presenter.set_presenter_layout(win, True)
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
    files, problems, notes = [], [], []

    def shoot(panel, name: str, where: str) -> None:
        _wait(app, lambda: False, 0.15)
        img = panel.grab().toImage()
        path = out / f"{name}.png"
        if not img.save(str(path), "PNG"):
            problems.append(f"{where}: could not save {path}")
        elif _is_blank(img):
            problems.append(f"{where}: the panel rendered blank")
        files.append(str(path))
        found, noted = _check(panel, name, where, strict)
        problems.extend(p for p in found if p not in problems)
        notes.extend(n for n in noted if n not in notes)

    hidden = {pid for pid, d in win.docks.items() if d.isHidden()} if args.presenter else set()
    for pid, panel in win.panels.items():
        if pid in hidden:
            notes.append(f"{pid}: hidden in the presenter layout")
            continue
        if not win.show_panel(pid):
            continue
        shoot(panel, pid, pid)
        for tabs in _tab_widgets(panel):     # every tab of the panel's tab widgets, in turn
            first = tabs.currentIndex()
            for i in range(tabs.count()):
                if i == first or not tabs.isTabEnabled(i):
                    continue
                tabs.setCurrentIndex(i)
                name = tabs.tabText(i).replace("&", "")
                shoot(panel, f"{pid}.{_slug(name)}", f"{pid} ▸ {name}")
            tabs.setCurrentIndex(first)
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
    report = {"ok": not problems, "model": card.ref if card else ref, "size": [width, height],
              "theme": args.theme, "presenter": bool(args.presenter), "files": files,
              "problems": problems, "notes": notes, "seconds": round(time.monotonic() - t0, 2)}
    if args.json:
        print_json(report)
    else:
        for f in files:
            print(f)
        for n in notes:
            print(f"note: {n}")
        for p in problems:
            print(f"problem: {p}")
    if problems:
        print(f"tvlab: error: selftest failed ({len(problems)} problems): {problems[0]}", file=sys.stderr)
        return 1
    return 0
