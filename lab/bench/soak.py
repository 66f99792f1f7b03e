"""`tvlab bench soak`: a workshop's day in the real main window, offscreen.

Analyses of varied prompts (5 to 500 tokens), model switches across the zoo, decode runs,
one conversion and the lessons in turn, step after step. It reports the resident memory
every hundredth step, the growth from the first model switch to the end (goal: at most
10 %), every error (goal: none) and the GUI thread's worst gap with its blocking sites.
Not a suite of ``tvlab bench all`` (it takes minutes): ``tvlab bench soak [--steps N]``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

NAME = "soak"
SWITCHES = 20
WORDS = ("the teacher taught the students with a book while the cat sat on the mat and "
         "nobody asked why the river ran past the old mill on the first of March").split()


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _prompt(rng: random.Random, i: int) -> str:
    """5 to 500 tokens, spread over the run (roughly one word, one token for these models)."""
    n = [5, 20, 60, 150, 300, 500][i % 6]
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n - rng.randrange(0, max(1, n // 5)))))


class _Watch:
    """Errors the lab shows and exceptions nobody caught, while the soak runs."""

    def __init__(self, session):
        self.errors: list[str] = []
        session.error.connect(lambda m: self.errors.append(m))
        self._hook, self._thread_hook = sys.excepthook, threading.excepthook
        sys.excepthook = lambda kind, value, tb: self.errors.append(f"unhandled {kind.__name__}: {value}")
        threading.excepthook = lambda a: self.errors.append(f"unhandled {a.exc_type.__name__}: {a.exc_value}")

    def close(self) -> None:
        sys.excepthook, threading.excepthook = self._hook, self._thread_hook


def run_soak(steps: int = 500, seed: int = 0, progress=print) -> dict:
    """Run the day and return the report (plain JSON values)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("TVLAB_SETTINGS_DIR", tempfile.mkdtemp(prefix="tvlab-soak-"))
    from lab.bench.gaps import GapWatch
    from lab.core import models
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow

    zoo = [f"zoo:{n}" for n in models.zoo_models()]
    if not zoo:
        raise RuntimeError("the soak needs the bundled zoo (models/)")
    rng = random.Random(seed)
    app = application()
    win = MainWindow(restore=False)
    win.resize(1400, 900)
    win.show()
    app.processEvents()
    session = win.session
    watch = _Watch(session)
    gaps = GapWatch(threshold_ms=50).start()

    def wait(cond, timeout=300.0) -> bool:
        end = time.perf_counter() + timeout
        while not cond():
            if time.perf_counter() > end:
                return False
            app.processEvents()
            time.sleep(0.002)
        return True

    def idle(timeout=300.0) -> None:
        if not wait(lambda: not session.busy, timeout):
            watch.errors.append(f"still busy after {timeout:.0f} s")

    def load(ref: str) -> None:
        before = session.card
        win.load_model(ref, "cpu", "fp32")
        if not wait(lambda: session.card is not before and session.card is not None and session.card.ref == ref):
            watch.errors.append(f"{ref} did not load")
        idle()

    try:
        return _day(win, session, watch, gaps, zoo, rng, steps, seed, wait, idle, load, progress)
    finally:
        gaps.stop()
        watch.close()
        win.close()


def _day(win, session, watch, gaps, zoo, rng, steps, seed, wait, idle, load, progress) -> dict:
    from lab.core import models
    from lab.ui import settings as lab_settings

    t0 = time.perf_counter()
    load(models.DEFAULT_MODEL)
    # A workshop opens every panel in its first minutes, and a panel is built on its first
    # show: that one-time cost comes before the baseline, so growth means what stays behind.
    for panel_id in list(win.panels):
        win.show_panel(panel_id)
        wait(lambda: not session.busy)
    win.show_panel("attention")
    lessons = [lesson for lesson in lab_settings.load_lessons() if lesson.ok]
    switch_every = max(1, steps // SWITCHES)
    rss: list[dict] = [{"step": 0, "rss_mb": round(_rss() / 1e6, 1)}]
    after_first_switch: Optional[int] = None
    switches = decodes = lessons_run = 0
    conversion: dict = {}
    after_conversion: Optional[int] = None   # the conversion's imports are a one-time step
    out_dir = Path(tempfile.mkdtemp(prefix="tvlab-soak-onnx-"))
    for i in range(1, steps + 1):
        if i % switch_every == 0 and switches < SWITCHES:
            current = session.card.ref if session.card else ""
            load(next(r for r in zoo[switches % len(zoo):] + zoo if r != current))
            switches += 1
            if after_first_switch is None:
                after_first_switch = _rss()
        before = session.trace
        session.set_prompt(_prompt(rng, i) + f" {i}", immediate=True)
        if not wait(lambda: session.trace is not before and not session.busy):
            watch.errors.append(f"analysis {i} did not finish")
        if i % 10 == 0:                       # a selection walk, as a user clicks around
            tr = session.trace
            stack = session.selection.stack
            session.select(layer=rng.randrange(tr.layers(stack)), head=rng.randrange(tr.heads(stack)))
        if i % 25 == 0:                       # a short decode
            win.show_panel("decoding")
            panel = win.panels["decoding"]
            for _ in range(4):
                if panel.step_btn.isEnabled():
                    panel.step_btn.click()
                    idle()
            decodes += 1
        if i % 50 == 0 and lessons:
            win.lesson_runner.start(lessons[lessons_run % len(lessons)])
            wait(lambda: not win.lesson_runner.busy and not session.busy)
            lessons_run += 1
        if i == steps // 2 and not conversion:
            conversion = _convert(win, out_dir, wait)
            after_conversion = _rss()
            if conversion.get("error"):
                watch.errors.append("conversion: " + conversion["error"])
        if i % 100 == 0 or i == steps:
            rss.append({"step": i, "rss_mb": round(_rss() / 1e6, 1)})
            progress(f"step {i}/{steps}: RSS {rss[-1]['rss_mb']} MB, {len(watch.errors)} errors, "
                     f"{switches} switches, {time.perf_counter() - t0:.0f} s")
    end_rss = _rss()
    growth = None if after_first_switch is None else (end_rss - after_first_switch) / after_first_switch
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "steps": steps, "seed": seed, "analyses": steps, "model_switches": switches, "decode_runs": decodes,
        "lessons_started": lessons_run, "conversion": conversion, "zoo": zoo,
        "rss": rss, "rss_after_first_switch_mb": None if after_first_switch is None else round(after_first_switch / 1e6, 1),
        "rss_end_mb": round(end_rss / 1e6, 1),
        "growth_after_first_switch": None if growth is None else round(growth, 4),
        "growth_ok": growth is not None and growth <= 0.10,
        "growth_after_conversion": None if after_conversion is None
        else round((end_rss - after_conversion) / after_conversion, 4),
        "errors": watch.errors,
        "gui_worst_gap_ms": round(gaps.worst_ms, 1),
        "gui_blocking_sites": [{"site": s, "ms": ms} for s, ms in gaps.top(3)],
        "other_threads_during_gaps": [{"site": s, "ms": ms} for s, ms in gaps.top_others(3)],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _convert(win, out_dir: Path, wait) -> dict:
    """One conversion through the Precision panel (fp32 + int8, the quick pair)."""
    win.show_panel("precision")
    panel = win.panels["precision"]
    for p, box in panel.checks.items():
        box.setChecked(p in ("fp32", "int8"))
    panel.folder.setText(str(out_dir / "onnx"))
    t = time.perf_counter()
    if not panel.start_conversion():
        return {"error": "the conversion did not start"}
    done = wait(lambda: panel.report is not None or not win.session.busy, 900)
    ok = done and panel.report is not None
    return {"seconds": round(time.perf_counter() - t, 1), "precisions": ["fp32", "int8"],
            **({} if ok else {"error": "no report (failed or timed out)"})}


def main(steps: int, save: Optional[str], as_json: bool) -> int:
    report = run_soak(steps, progress=(lambda _m: None) if as_json else print)
    if save:
        from lab.core import atomic

        folder = Path(save)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{report['date'][:10]}-cpu-soak-{steps}.json"
        atomic.write_text(path, json.dumps(report, indent=2))
        if not as_json:
            print(f"saved {path}")
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"RSS {report['rss_after_first_switch_mb']} MB after the first switch -> {report['rss_end_mb']} MB "
              f"at the end: growth {100 * (report['growth_after_first_switch'] or 0):.1f} % (goal <= 10 %)")
        print(f"errors: {len(report['errors'])}  GUI worst gap: {report['gui_worst_gap_ms']} ms")
        for e in report["errors"][:10]:
            print("  error:", e)
        for s in report["gui_blocking_sites"]:
            print(f"  blocked {s['ms']} ms at {s['site']}")
        for s in report["other_threads_during_gaps"]:
            print(f"  meanwhile, {s['ms']} ms: another thread at {s['site']}")
    return 0 if report["growth_ok"] and not report["errors"] else 1
