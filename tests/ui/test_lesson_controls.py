"""Every control a lesson step names ("the Run button", "the Context tab", "the Preset list")
exists, by object name, in the panel the lesson brings forward (or in a panel the step names,
"the Scaling laws panel"), and shows the label the step uses. Runs over every lesson file in
resources/lessons, so lessons added later are checked too."""
import json
import re

import pytest
from PySide6.QtWidgets import QAbstractButton, QLabel, QTabWidget, QWidget

from lab.core.lessons import SUFFIXES, control_name, named_controls, parse
from lab.core.resources import resource

LESSON_FILES = sorted(p for p in resource("lessons").iterdir() if p.suffix in SUFFIXES)


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One main window for the module (no model is needed to have the controls)."""
    import os

    from lab.ui.main_window import MainWindow

    old = os.environ.get("TVLAB_SETTINGS_DIR")
    os.environ["TVLAB_SETTINGS_DIR"] = str(tmp_path_factory.mktemp("settings"))
    win = MainWindow(restore=False)
    win.resize(1400, 900)
    yield win
    win.session.shutdown()
    win.close()
    win.deleteLater()
    if old is None:
        os.environ.pop("TVLAB_SETTINGS_DIR", None)
    else:
        os.environ["TVLAB_SETTINGS_DIR"] = old


def _shown(text: str) -> str:
    """A label as the user reads it: no mnemonic '&', '&&' is '&', no trailing ellipsis or colon."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").replace("…", "").strip().rstrip(":")


def _label_of(widget: QWidget, kind: str, panel: QWidget) -> list[str]:
    """What the user sees as the control's name."""
    if kind == "tab":
        tabs = widget.parentWidget().parentWidget() if widget.parentWidget() else None
        return [_shown(tabs.tabText(tabs.indexOf(widget)))] if isinstance(tabs, QTabWidget) else []
    if kind == "button" and isinstance(widget, QAbstractButton):
        return [_shown(widget.text())]
    return [_shown(lab.text()) for lab in panel.findChildren(QLabel)]   # a box or list: the label beside it


def control_problems(win, lesson) -> list[str]:
    """One sentence per control a step names that the panels it points at do not have."""
    problems = []
    raised = win.panels.get(lesson.raise_panel) if lesson.raise_panel else None
    if lesson.raise_panel and raised is None:
        return [f"raises {lesson.raise_panel!r}, which is no panel of the lab"]
    for n, step in enumerate(lesson.steps, 1):
        named = [p for p in win.panels.values()
                 if p.title and re.search(rf"\bthe {re.escape(p.title)} panel\b", step, re.I)]
        where = [p for p in [raised, *named, win.panels["prompt"]] if p is not None]
        for kind, label in named_controls(step):
            name = control_name(kind, label)
            hits = [(w, p) for p in where for w in p.findChildren(QWidget, name)]
            if not hits:
                problems.append(f"step {n} names the {label!r} {kind}, but no widget named {name!r} is in "
                                f"{', '.join(repr(p.title) for p in where)}")
            elif not any(label in _label_of(w, kind, p) for w, p in hits):
                problems.append(f"step {n} names the {label!r} {kind}; the widget {name!r} shows "
                                f"{[t for w, p in hits for t in _label_of(w, kind, p)][:5]}")
    return problems


@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_every_control_a_step_names_exists_in_the_panel_it_brings_forward(window, path):
    lesson = parse(path)
    assert control_problems(window, lesson) == []


def test_the_check_catches_a_control_that_is_not_there(window, tmp_path):
    """A renamed button, a tab in another panel, a wrong list: each is reported."""
    path = tmp_path / "x.json"
    path.write_text(json.dumps({
        "title": "x", "explanation": "x", "raise": "decoding",
        "try": ["Press the Generate button.",                   # the button is called Run
                "Open the Context tab.",                        # a tab of the Tokens panel, not decoding
                "In the Tokens & embeddings panel, open the Context tab.",   # named panel: found
                "Press the Run button, then choose GPT-3 in the Preset list."]}))   # Preset: scaling's
    problems = control_problems(window, parse(path))
    assert len(problems) == 3, problems
    assert "'button-generate'" in problems[0] and problems[0].startswith("step 1")
    assert "'tab-context'" in problems[1] and problems[1].startswith("step 2")
    assert "'list-preset'" in problems[2] and problems[2].startswith("step 4")
    assert parse(path) and [(k, l) for s in parse(path).steps for k, l in named_controls(s)][:2] == [
        ("button", "Generate"), ("tab", "Context")]


def test_editing_the_input_clears_a_forced_target(qtbot, session, make_panel):
    """A lesson's target (dates-t5's "1987-03-03") belongs to its input: when the user edits the
    input, the target goes, so the output side shows what the model writes for the new input."""
    from lab.ui.panels.prompt import PromptPanel

    panel = make_panel(PromptPanel, (900, 160))
    session.set_target("1987-03-03")          # as the LessonRunner does, then the prompt
    session.set_prompt("the 3rd of March, 1987", immediate=True)
    assert panel.target.text() == "1987-03-03" and session.target == "1987-03-03"
    panel.edit.selectAll()
    qtbot.keyClicks(panel.edit, "Mar 3 87")
    assert session.prompt == "Mar 3 87"
    assert session.target == "" and panel.target.text() == ""
    assert "target was cleared" in panel.note.text() and panel.note.isVisible()
    panel.target.setText("1987-03-03")        # typed again by the user: the note goes, the target stays
    assert session.target == "1987-03-03" and panel.note.text() == ""
    session.set_prompt("the 3rd of March, 1987")   # a lesson or the session changing the prompt keeps it
    assert session.target == "1987-03-03"
