"""Start-up: the window paints before torch and transformers are imported, panels tabbed
behind are built when first shown, and the worker loads the model after the first paint."""
import json
import os
import subprocess
import sys

_HEAVY = ("torch", "transformers")

_PROBE = r"""
import json, sys
heavy = %r
seen = {}
import lab.ui.main_window
seen["import"] = [m for m in heavy if m in sys.modules]
from lab.ui.app import application
from lab.ui.main_window import MainWindow
from lab.ui.session import Session
Session.start_workers = lambda self: None     # what the window does before the worker runs
app = application()
win = MainWindow(restore=False)
seen["built"] = [m for m in heavy if m in sys.modules]
win.show()
for _ in range(5):
    app.processEvents()
seen["painted"] = [m for m in heavy if m in sys.modules]
seen["zoo"] = [win.model_panel.tree.topLevelItem(0).child(i).text(0)
               for i in range(win.model_panel.tree.topLevelItem(0).childCount())]
seen["built_panels"] = sorted(win.panels.built())
print(json.dumps(seen))
win.session.shutdown()
"""


def test_window_paints_without_torch_or_transformers(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TVLAB_SETTINGS_DIR=str(tmp_path),
               PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _PROBE % (_HEAVY,)], capture_output=True, text=True,
                         env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["import"] == [] and seen["built"] == [] and seen["painted"] == [], seen
    assert "zoo:bard-gpt" in seen["zoo"]
    # the panels tabbed behind the attention view wait for their first show
    assert "scaling" not in seen["built_panels"] and "precision" not in seen["built_panels"]
    assert {"prompt", "model", "attention"} <= set(seen["built_panels"])


def test_a_panel_built_late_catches_up_with_the_session(qtbot, tiny_gpt2):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    assert not win.panels.is_built("tokens")
    win.load_model(str(tiny_gpt2))
    qtbot.waitUntil(lambda: win.session.card is not None, timeout=60000)
    win.session.set_prompt("The cat sat on the mat.", immediate=True)
    qtbot.waitUntil(lambda: win.session.trace is not None, timeout=60000)
    assert not win.panels.is_built("tokens")
    win.show_panel("tokens")                     # the user clicks its tab
    assert win.panels.is_built("tokens")
    qtbot.waitUntil(lambda: win.panels["tokens"].selftest_ready(), timeout=60000)
    win.session.shutdown()


def test_a_hidden_panel_renders_only_when_shown(qtbot, tiny_gpt2):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    win.load_model(str(tiny_gpt2))
    qtbot.waitUntil(lambda: win.session.card is not None, timeout=60000)
    win.show_panel("decoding")
    panel = win.panels["decoding"]
    win.show_panel("attention")                  # decoding is now tabbed behind
    qtbot.waitUntil(lambda: panel.visibleRegion().isEmpty(), timeout=5000)
    calls = []
    real = panel.on_trace_changed
    panel.on_trace_changed = lambda trace: (calls.append(trace), real(trace))
    for text in ("One two three.", "Four five six.", "Seven eight nine."):
        win.session.set_prompt(text, immediate=True)
        qtbot.waitUntil(lambda: win.session.trace is not None and win.session.prompt == text
                        and not win.session.busy, timeout=60000)
    assert calls == []                           # three traces, no re-render while hidden
    win.show_panel("decoding")
    qtbot.waitUntil(lambda: bool(calls), timeout=5000)
    qtbot.wait(50)
    assert calls == [win.session.trace]          # the last one, once, when shown
    win.session.shutdown()

