"""Workshop mode in the window: the Lessons menu, running a lesson, presenter options, export."""
import json
import os

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication


@pytest.fixture
def zoo(tiny_gpt2, tiny_t5, tiny_bert, tmp_path, monkeypatch):
    """A zoo with the names the lessons use, made of the tiny test models."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "bard-gpt").symlink_to(tiny_gpt2)
    (folder / "dates-t5").symlink_to(tiny_t5)
    (folder / "bard-bert").symlink_to(tiny_bert)
    monkeypatch.setenv("TVLAB_ZOO", str(folder))
    return folder


@pytest.fixture
def window(qtbot, zoo):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.session.shutdown()


def lesson_actions(win):
    return [a for a in win.lessons_menu.actions() if a.data()]


def test_menu_lists_lessons_and_disables_bad_ones_with_the_reason(window, monkeypatch):
    from lab.ui.settings import user_lessons_dir

    mine = user_lessons_dir()
    mine.mkdir(parents=True)
    (mine / "broken.json").write_text('{"title": "Broken", "explanation": "x", "try": "not a list"}')
    (mine / "nomodel.json").write_text(json.dumps(
        {"title": "Needs a big model", "explanation": "x", "try": ["a"], "model": "zoo:huge"}))
    window.lessons_menu.aboutToShow.emit()
    acts = {a.data(): a for a in lesson_actions(window)}
    assert len([a for a in acts.values() if a.isEnabled()]) == 9
    assert not acts["broken"].isEnabled() and "field 'try' must be a list" in acts["broken"].toolTip()
    assert not acts["nomodel"].isEnabled() and "zoo:huge" in acts["nomodel"].toolTip()
    assert "unavailable" in acts["nomodel"].text()
    # the side panel shows the same, with the reason in the text
    panel = window.panels["lessons"]
    panel.reload()
    texts = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert any("unavailable" in t and "zoo:huge" in t for t in texts)


def test_attention_lesson_sets_model_prompt_selection_and_panel(window, qtbot):
    panel = window.panels["lessons"]
    lesson = panel.lesson("03-self-attention")
    done = []
    window.lesson_runner.finished.connect(lambda l, notes: done.append(notes))
    panel.show_lesson(lesson, start=True)
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    s = window.session
    assert s.card is not None and s.card.ref == "zoo:bard-gpt"
    assert s.prompt == "The teacher taught the students with the book."
    assert window.panels["prompt"].edit.toPlainText() == s.prompt
    tokens = list(s.trace.query_tokens("self"))
    assert tokens[s.selection.token].strip("Ġ ").lower() == "with"
    assert (s.selection.layer, s.selection.head) == (0, 0)
    attention = window.panels["attention"]
    assert attention.hide_first.isChecked()                        # the lesson's panel setting
    assert not window.docks["attention"].visibleRegion().isEmpty()  # raised
    assert "Try this" in panel.text.toHtml() and "teacher" in panel.text.toPlainText()
    assert done[0] == [], done


def test_tokens_lesson_sets_the_tokens_panel(window, qtbot):
    panel = window.panels["lessons"]
    done = []
    window.lesson_runner.finished.connect(lambda l, notes: done.append(notes))
    panel.start(panel.lesson("01-tokenization"))
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    tokens = window.panels["tokens"]
    assert tokens.tabs.tabText(tokens.tabs.currentIndex()) == "Tokens"
    tokens.apply_lesson({"view": "compare", "compare": "zoo:bard-bert"})
    assert tokens.tabs.tabText(tokens.tabs.currentIndex()) == "Compare"
    assert tokens.compare_model.currentText() == "zoo:bard-bert"
    assert not window.docks["tokens"].visibleRegion().isEmpty()
    assert window.session.prompt.startswith("To be, or not to be")
    assert done[0] == []


def test_seq2seq_lesson_switches_model_and_sets_the_target(window, qtbot):
    panel = window.panels["lessons"]
    done = []
    window.lesson_runner.finished.connect(lambda l, notes: done.append(notes))
    panel.start(panel.lesson("04-architectures"))
    qtbot.waitUntil(lambda: bool(done), timeout=60000)
    s = window.session
    assert s.card.kind == "encoder-decoder" and s.target == "1987-03-03"
    assert s.selection.stack == "cross" and s.selection.token == 0
    assert window.panels["prompt"].target.text() == "1987-03-03"


def test_missing_panel_settings_are_reported_not_fatal(window, qtbot, tmp_path, monkeypatch):
    from lab.core.lessons import parse

    path = tmp_path / "x.json"
    path.write_text(json.dumps({"title": "x", "explanation": "x", "try": ["x"], "raise": "nowhere",
                                "panels": {"nowhere": {"a": 1}}, "selection": {"layer": 50}}))
    lesson = parse(path)
    done = []
    window.lesson_runner.finished.connect(lambda l, notes: done.append(notes))
    window.session.load_model("zoo:bard-gpt")
    qtbot.waitUntil(lambda: window.session.card is not None, timeout=60000)
    window.session.set_prompt("hello", immediate=True)
    qtbot.waitUntil(lambda: window.session.trace is not None, timeout=60000)
    window.lesson_runner.start(lesson)
    qtbot.waitUntil(lambda: bool(done), timeout=10000)
    notes = " ".join(done[0])
    assert "no 'nowhere' panel" in notes and "Layer 50 does not exist" in notes
    assert window.session.selection.layer == window.session.trace.layers("self") - 1
    assert "nowhere" in window.panels["lessons"].status.text()


def test_presenter_fonts_contrast_and_reset(window, qtbot):
    from lab.ui import settings as lab_settings
    from lab.ui import workshop as wl

    app = QApplication.instance()
    base = app.font().pointSizeF()
    wl.set_large_fonts(True)
    assert app.font().pointSizeF() == pytest.approx(base * wl.LARGE_FONT_SCALE)
    window.set_theme(wl.HIGH_CONTRAST)
    assert app.palette().color(QPalette.Window).name() == "#000000"
    assert app.palette().color(QPalette.WindowText).name() == "#ffffff"
    window.session.set_prompt("some prompt")
    window.docks["attention"].hide()
    wl.reset_everything(window)
    assert app.font().pointSizeF() == pytest.approx(base)
    assert app.palette().color(QPalette.Window).name() != "#000000"
    assert window.session.prompt == "" and not window.docks["attention"].isHidden()
    assert lab_settings.settings().value("theme", "system") == "system"
    assert not wl.large_fonts_on()


def test_export_writes_a_page_with_views_and_settings(window, qtbot, tmp_path):
    from lab.ui import workshop as wl

    window.session.load_model("zoo:bard-gpt")
    qtbot.waitUntil(lambda: window.session.card is not None, timeout=60000)
    window.session.set_prompt("The teacher taught", immediate=True)
    qtbot.waitUntil(lambda: window.session.trace is not None and not window.session.busy, timeout=60000)
    tree = window.panels["decoding"].tree
    qtbot.waitUntil(lambda: tree.topLevelItemCount() > 0 and not window.session.busy, timeout=60000)
    out = wl.export_to(window, tmp_path / "exports")
    assert out is not None and out.parent == tmp_path / "exports"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]   # no temporary left
    page = (out / "index.html").read_text(encoding="utf-8")
    data = json.loads((out / "session.json").read_text(encoding="utf-8"))
    assert data["prompt"] == "The teacher taught" and data["model"]["ref"] == "zoo:bard-gpt"
    assert "The teacher taught" in page and "bard-gpt" in page
    for title, name in data["images"].items():
        assert (out / name).stat().st_size > 1000 and f"src='{name}'" in page
    assert "window.png" in data["images"].values() and "attention.png" in data["images"].values()
    # the decoding panel's export_data(): its tree, rendered as a list on the page
    assert data["decode_tree"]["text"] == tree.topLevelItem(0).text(0) and "<h2>Decode tree</h2>" in page
    assert data["panels"]["lessons"] == {"lesson": None}                 # a panel's lesson_state()
    assert "Session exported to" in window.panels["lessons"].status.text()


def test_export_to_an_unwritable_place_says_so_and_leaves_nothing(window, qtbot, tmp_path, monkeypatch):
    from lab.ui import workshop as wl

    shown = []
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert wl.export_to(window, a_file / "sub", show=lambda t, m: shown.append(m)) is None
    assert shown and "Cannot export to" in shown[0]
    if os.geteuid() != 0:   # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert wl.export_to(window, ro, show=lambda t, m: shown.append(m)) is None
        assert list(ro.iterdir()) == []
    # a failure half way (a panel cannot save its picture): no partial folder is left
    target = tmp_path / "half"
    target.mkdir()
    monkeypatch.setattr(type(window.panels["lessons"]), "export_png", lambda self, path: False)
    assert wl.export_to(window, target, show=lambda t, m: shown.append(m)) is None
    assert list(target.iterdir()) == [] and "lessons" in shown[-1]


def test_decoding_precision_and_scaling_lessons_set_their_panels(window, qtbot):
    panel = window.panels["lessons"]
    done = []
    window.lesson_runner.finished.connect(lambda l, notes: done.append(notes))
    for n, lesson_id in enumerate(["05-decoding", "07-precision-memory", "08-scaling-laws"], 1):
        panel.start(panel.lesson(lesson_id))
        qtbot.waitUntil(lambda: len(done) == n, timeout=60000)
        assert done[-1] == [], (lesson_id, done[-1])
        if lesson_id == "05-decoding":
            dec = window.panels["decoding"].settings()
            assert (dec.strategy, dec.temperature, dec.max_new_tokens) == ("greedy", 1.0, 20)
        elif lesson_id == "07-precision-memory":
            prec = window.panels["precision"]
            assert prec.tabs.tabText(prec.tabs.currentIndex()) == "Memory calculator"
            calc = prec.calculator
            assert calc.params_edit.text() == "1000000000" and calc.infer_dtype.currentText() == "fp32"
            assert not window.docks["precision"].visibleRegion().isEmpty()
        else:
            sc = window.panels["scaling"]
            assert sc.law.currentData() == "chinchilla-1" and sc.tabs.currentIndex() == 2
            assert sc.params.value() == pytest.approx(70e9) and sc.tokens.value() == pytest.approx(1.4e12)
