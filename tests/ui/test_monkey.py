"""A seeded monkey: a few hundred random but valid actions on the real main window.

It fails on an unhandled exception (its own excepthook records them), an internal error
from the worker, a worker that no longer answers, or a dialog left open (every dialog is
patched to record itself and close). The seed is printed; replay a failure with
``TVLAB_MONKEY_SEED=<seed> pytest tests/ui/test_monkey.py``; ``TVLAB_MONKEY_STEPS``
changes the number of actions.
"""
import os
import random
import sys
import threading

import pytest
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox, QPlainTextEdit, QTabBar

STEPS = int(os.environ.get("TVLAB_MONKEY_STEPS", "200"))
WORDS = ("the", "teacher", "taught", "students", "with", "a", "book", "cat", "sat", "on", "mat",
         "2024-03-01", "Über", "naïve", "!", "?", ",", "and", "then", "\n", "日本", "🙂")


@pytest.fixture
def zoo(tiny_gpt2, tiny_t5, tiny_bert, tmp_path, monkeypatch):
    """The zoo names (and so the lessons) served by the tiny test models."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    for name, model in (("bard-gpt", tiny_gpt2), ("dates-t5", tiny_t5), ("bard-bert", tiny_bert)):
        (folder / name).symlink_to(model)
    monkeypatch.setenv("TVLAB_ZOO", str(folder))
    return folder


@pytest.fixture
def recorder(monkeypatch):
    """Unhandled exceptions (GUI thread and others) and dialogs, recorded instead of shown."""
    seen = {"exceptions": [], "dialogs": []}

    def hook(kind, value, tb):
        seen["exceptions"].append(f"{kind.__name__}: {value}")

    monkeypatch.setattr(sys, "excepthook", hook)
    monkeypatch.setattr(threading, "excepthook", lambda args: seen["exceptions"].append(
        f"{args.exc_type.__name__} in {args.thread.name if args.thread else '?'}: {args.exc_value}"))

    def dialog(name, answer):
        def record(*args, **kwargs):
            seen["dialogs"].append(name)
            return answer
        return record

    for name in ("about", "information", "warning", "critical"):
        monkeypatch.setattr(QMessageBox, name, staticmethod(dialog(f"QMessageBox.{name}", QMessageBox.Ok)))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(dialog("QMessageBox.question", QMessageBox.No)))
    monkeypatch.setattr(QMessageBox, "exec", lambda self: seen["dialogs"].append("QMessageBox.exec") or 0)
    monkeypatch.setattr(QDialog, "exec", lambda self: seen["dialogs"].append(type(self).__name__) or 0)
    for name in ("getOpenFileName", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(dialog(f"QFileDialog.{name}", ("", ""))))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(dialog("QFileDialog.dir", "")))
    return seen


def test_monkey(qtbot, zoo, recorder, capsys):
    from lab.ui import settings as lab_settings
    from lab.ui import theme as lab_theme
    from lab.ui.main_window import MainWindow

    seed = int(os.environ.get("TVLAB_MONKEY_SEED", random.randrange(1 << 30)))
    with capsys.disabled():
        print(f"\nmonkey seed {seed} (replay: TVLAB_MONKEY_SEED={seed})")
    rng = random.Random(seed)
    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    session = win.session
    internal = []
    session.error.connect(lambda m: "Internal error" in m and internal.append(m))
    win.load_model("zoo:bard-gpt")
    qtbot.waitUntil(lambda: session.card is not None, timeout=60000)
    lessons = [lesson for lesson in lab_settings.load_lessons() if lesson.ok]
    decoding = win.panels["decoding"]
    edit = win.panels["prompt"].findChild(QPlainTextEdit)

    def text():
        return " ".join(rng.choice(WORDS) for _ in range(rng.choice((1, 3, 8, 30, 120))))

    def select():
        tr = session.trace
        if tr is None:
            return
        stack = session.selection.stack
        session.select(layer=rng.randrange(tr.layers(stack)), head=rng.randrange(tr.heads(stack)),
                       token=rng.randrange(-1, len(tr.query_tokens(stack))))

    def tab():
        bars = [b for b in win.findChildren(QTabBar) if b.isVisible() and b.count() > 1]
        if bars:
            bar = rng.choice(bars)
            bar.setCurrentIndex(rng.randrange(bar.count()))

    def click(button):
        if button.isEnabled() and button.isVisible():
            button.click()

    actions = [
        (20, lambda: edit.setPlainText(text())),
        (8, lambda: session.set_prompt(text(), immediate=True)),
        (10, tab),
        (6, lambda: win.show_panel(rng.choice(list(win.panels)))),
        (15, select),
        (8, lambda: click(decoding.step_btn)),
        (3, lambda: click(decoding.run_btn)),
        (3, lambda: click(decoding.back_btn)),
        (2, lambda: click(decoding.reset_btn)),
        (3, lambda: decoding.bars.candidate_clicked.emit(rng.randrange(30))),   # a branch
        (3, lambda: win.load_model(rng.choice(("zoo:bard-gpt", "zoo:dates-t5", "zoo:bard-bert")))),
        (4, lambda: session.cancel()),
        (2, lambda: win.set_theme(rng.choice(lab_theme.THEMES))),
        (2, lambda: lessons and win.lesson_runner.start(rng.choice(lessons))),
    ]
    weights = [w for w, _ in actions]
    traces, models = set(), set()
    for _ in range(STEPS):
        _, act = rng.choices(actions, weights)[0]
        act()
        traces.add(id(session.trace))
        models.add(session.card.ref if session.card else None)
        qtbot.wait(rng.choice((0, 1, 5, 10)))
    session.cancel()
    qtbot.waitUntil(lambda: not session.busy, timeout=60000)
    answered = []
    session.request("monkey.alive", lambda _lm, _job: "alive", answered.append, needs_model=False)
    qtbot.waitUntil(lambda: answered == ["alive"], timeout=30000)        # the worker lives on
    open_dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]
    session.shutdown()
    with capsys.disabled():
        print(f"monkey: {STEPS} actions, {len(traces)} traces seen, models {sorted(map(str, models))}")
    assert recorder["exceptions"] == [], f"seed {seed}: {recorder['exceptions']}"
    assert internal == [], f"seed {seed}: {internal}"
    assert open_dialogs == [], f"seed {seed}: dialogs left open: {open_dialogs}"
