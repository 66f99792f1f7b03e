"""`tvlab bench ui`: the window stays responsive, and starts quickly.

- cold start: a fresh process that opens the main window offscreen and loads the default
  model, against a fresh process that only imports torch, transformers and PySide6 and
  loads the same model with transformers (the floor any such app pays);
- the same two figures for the PyInstaller bundle when ``dist/tvlab/tvlab`` exists
  (``tvlab startup`` and ``tvlab startup --floor`` run inside it);
- responsiveness: the longest gap of a 10 ms heartbeat timer on the GUI thread while the
  worker loads a model, runs half a second of forward passes and captures traces, and the
  three call sites that held the GUI thread longest during gaps (lab.bench.gaps; target:
  no gap of 50 ms or more);
- prompt to panels: a prompt submitted until every panel has re-rendered, against one
  bare transformers forward pass with attentions on the same model.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from lab.bench import Figure

NAME = "ui"

_COLD = r"""
import time, sys, os
t0 = time.perf_counter()
mode, ref = sys.argv[1], sys.argv[2]
if mode == "lab":
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow
    app = application()
    win = MainWindow(restore=False); win.show(); app.processEvents()
    shown = time.perf_counter() - t0
    win.load_model(ref, "cpu", "fp32")
    while win.session.card is None:
        app.processEvents(); time.sleep(0.005)
    print(shown, time.perf_counter() - t0)
    win.close()
else:
    import lab, torch, transformers, PySide6.QtWidgets
    from lab.core.models import resolve
    folder, _ = resolve(ref)
    transformers.AutoTokenizer.from_pretrained(str(folder))
    transformers.AutoModel.from_pretrained(str(folder))
    print(0.0, time.perf_counter() - t0)
"""


def _model_ref(tmp: str) -> str:
    from lab.core import models

    if "bard-gpt" in models.zoo_models():
        return "zoo:bard-gpt"
    from lab.bench import tiny_models

    tiny_models.build("gpt2", tmp, n_layer=4, n_head=4, n_embd=128, n_positions=256)
    return tmp


def _cold(mode: str, ref: str) -> tuple[float, float]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               TVLAB_SETTINGS_DIR=tempfile.mkdtemp(prefix="tvlab-bench-"))
    out = subprocess.run([sys.executable, "-c", _COLD, mode, ref], capture_output=True, text=True,
                         env=env, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "cold start failed")
    shown, loaded = map(float, out.stdout.split()[-2:])
    return shown, loaded


BUNDLE = os.path.join("dist", "tvlab", "tvlab")


def _bundle(ref: str) -> list[Figure]:
    """Window and model from the bundle against the bundle's own floor (skipped without one)."""
    if not os.access(BUNDLE, os.X_OK):
        print(f"(no bundle at {BUNDLE}: build it, then `{BUNDLE} bench ui` or `{BUNDLE} startup`)")
        return []
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")

    def once(*extra):
        out = subprocess.run([BUNDLE, "startup", "--json", "--model", ref, *extra], capture_output=True,
                             text=True, env=dict(env, TVLAB_SETTINGS_DIR=tempfile.mkdtemp(prefix="tvlab-bench-")),
                             timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"bundle startup failed: {out.stderr.strip()[-300:]}")
        return json.loads(out.stdout)

    lab_run, floor = once(), once("--floor")
    return [Figure("bundle: window shown", lab_run["window_shown_s"] * 1000, "ms", target="under 1.5 s",
                   ok=lab_run["window_shown_s"] <= 1.5),
            Figure("bundle: window + model loaded", lab_run["model_loaded_s"] * 1000, "ms",
                   floor["floor_loaded_s"] * 1000, "the bundle's floor (tvlab startup --floor)",
                   "ratio <= 1.15", lab_run["model_loaded_s"] <= 1.15 * floor["floor_loaded_s"])]


def run(device: str, quick: bool) -> list[Figure]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("TVLAB_SETTINGS_DIR", tempfile.mkdtemp(prefix="tvlab-bench-"))
    tmp = tempfile.mkdtemp(prefix="tvlab-bench-model-")
    ref = _model_ref(tmp)
    figures: list[Figure] = []

    repeats = 1 if quick else 3
    lab_runs = [_cold("lab", ref) for _ in range(repeats)]
    base_runs = [_cold("bare", ref) for _ in range(repeats)]
    shown = sorted(r[0] for r in lab_runs)[len(lab_runs) // 2]
    loaded = sorted(r[1] for r in lab_runs)[len(lab_runs) // 2]
    bare = sorted(r[1] for r in base_runs)[len(base_runs) // 2]
    figures.append(Figure("cold start: window shown", shown * 1000, "ms", target="under 1.0 s", ok=shown <= 1.0))
    figures.append(Figure(f"cold start: window + {ref if ref.startswith('zoo:') else 'model'} loaded",
                          loaded * 1000, "ms", bare * 1000,
                          "fresh process: import torch+transformers+PySide6, load with transformers",
                          "ratio <= 1.15", loaded <= 1.15 * bare))
    figures += _bundle(ref)

    from lab.bench.gaps import GapWatch
    from lab.ui.app import application
    from lab.ui.main_window import MainWindow

    app = application()
    win = MainWindow(restore=False)
    win.show()
    app.processEvents()            # the first paint belongs to the cold-start figure
    watch = GapWatch().start()

    def wait(cond, timeout=120.0):
        end = time.perf_counter() + timeout
        while not cond() and time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    win.load_model(ref, device, "fp32")
    wait(lambda: win.session.card is not None)

    def busy_forward(lm, job):
        import torch

        ids = torch.randint(0, lm.card.vocab, (1, 64), device=lm.device)
        end = time.perf_counter() + 0.5
        with torch.inference_mode():
            while time.perf_counter() < end:
                lm.model(ids)
        return "ok"

    done = []
    win.session.request("bench.busy", busy_forward, done.append)
    wait(lambda: bool(done))
    prompt = "The teacher taught the students with the book. " * (2 if quick else 8)
    ms = []
    for i in range(repeats + 1):
        before = win.session.trace
        t = time.perf_counter()
        win.session.set_prompt(prompt + str(i), immediate=True)
        wait(lambda: win.session.trace is not before and not win.session.busy)
        app.processEvents()
        ms.append((time.perf_counter() - t) * 1000)
    watch.stop()
    figures.append(Figure("longest GUI-thread gap during load + captures", watch.worst_ms, "ms",
                          target="under 50 ms", ok=watch.worst_ms < 50))
    for i, (site, blocked) in enumerate(watch.top(3), 1):
        figures.append(Figure(f"GUI thread blocked #{i}: {site}", blocked, "ms"))

    def bare_forward():
        import torch

        from lab.core.trace import encode

        def fn(lm, job):
            enc, _ = encode(lm, prompt + "0")
            ids = torch.tensor([enc["ids"]], device=lm.device)
            with torch.inference_mode(), lm.attention("eager"):
                t0 = time.perf_counter()
                lm.model(ids, output_attentions=True)
                return (time.perf_counter() - t0) * 1000
        got = []
        win.session.request("bench.bare", fn, got.append)
        wait(lambda: bool(got))
        return got[0]

    base = sorted(bare_forward() for _ in range(3))[1]
    med = sorted(ms[1:])[len(ms[1:]) // 2]
    figures.append(Figure("prompt to every panel re-rendered", med, "ms", base,
                          "one bare transformers forward with attentions"))
    win.close()
    return figures
