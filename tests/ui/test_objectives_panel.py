"""Objectives panel, driven the way a user would (offscreen)."""
import pytest
from PySide6.QtCore import QPoint, Qt

from lab.ui.panels.objectives import ObjectivesPanel

TEXT = "To be, or not to be, that is the question."


@pytest.fixture
def panel(make_panel):
    return make_panel(ObjectivesPanel, (620, 760))


def ready(qtbot, panel, session, text=TEXT, model=None, timeout=30000):
    session.set_prompt(text)
    qtbot.waitUntil(lambda: panel.report is not None and panel.report.text == text and not session.busy
                    and (model is None or panel.report.model == model), timeout=timeout)
    return panel.report


def test_docked_beside_the_attention_panel(qtbot):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    assert win.docks["attention"] in win.tabifiedDockWidgets(win.docks["objectives"])
    win.close()


def test_decoder_strip_examples_and_predictions(qtbot, session, panel, tiny_gpt2, load_and_wait):
    card = load_and_wait(qtbot, session, tiny_gpt2)
    rep = ready(qtbot, panel, session)
    view = panel.view
    assert rep.loss.objective == "causal" and rep.own_objective == "causal"
    assert "decoder" in view.story.text()
    assert view.strip.tokens == rep.loss.tokens
    assert f"{rep.loss.mean_nats:.3f} nats" in view.loss_title.text()
    assert f"{rep.loss.perplexity:,.2f}" in view.loss_title.text()
    assert [g.example for g in view.grids] == list(rep.examples)
    assert "how this kind of model is trained" in view.titles[0].text()
    assert all(g.height() > 20 for g in view.grids)
    assert panel.selftest_ready() and card.name == rep.model
    # a click on a chip shows that token's top predictions
    i = 3
    qtbot.mouseClick(view.strip, Qt.LeftButton, pos=view.strip._rects[i].center())
    assert view.strip.selected == i
    t = rep.loss.tokens[i]
    text = view.predictions.text()
    assert f"Token {i}" in text and f"rank {t.rank}" in text
    from html import escape
    assert escape(t.top[0][0]) in text
    # the first token has nothing before it
    qtbot.mouseClick(view.strip, Qt.LeftButton, pos=view.strip._rects[0].center())
    assert "not scored" in view.predictions.text()
    assert view.strip.index_at(QPoint(-5, -5)) == -1
    # bits
    view.unit.setCurrentText("bits")
    assert f"{rep.loss.mean_bits:.3f} bits" in view.loss_title.text()
    assert panel.lesson_state() == {"seed": 0, "unit": "bits"}


def test_seed_draws_another_example(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    first = ready(qtbot, panel, session, "The teacher taught the students with the book by the river bank.")
    panel.view.new_draw.click()
    qtbot.waitUntil(lambda: panel.report is not first and panel.report.examples[1].stats["seed"] == 1
                    and not session.busy, timeout=20000)
    assert panel.view.seed.value() == 1
    assert "Seed 1" in panel.view.ex_notes[1].text()
    assert panel.report.loss == first.loss           # the loss does not depend on the draw


def test_follows_the_model_kind(qtbot, session, panel, tiny_bert, tiny_t5, load_and_wait):
    card = load_and_wait(qtbot, session, tiny_bert)
    rep = ready(qtbot, panel, session, model=card.name)
    assert rep.loss.objective == "pll" and "encoder" in panel.view.story.text()
    assert "how this kind of model is trained" in panel.view.titles[1].text()
    card = load_and_wait(qtbot, session, tiny_t5)
    qtbot.waitUntil(lambda: panel.report is not None and panel.report.model == card.name and not session.busy,
                    timeout=30000)
    rep = panel.report
    assert rep.loss.objective == "seq2seq" and rep.target_source == "greedy"
    assert "greedy output" in panel.view.source.text()
    session.set_target("the water")
    qtbot.waitUntil(lambda: panel.report.target == "the water" and not session.busy, timeout=20000)
    assert panel.report.target_source == "given" and "the target you typed" in panel.view.source.text()
    assert panel.export_data()["objectives"]["target"] == "the water"


def test_bad_input_shows_one_message_and_the_worker_lives_on(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session)
    session.set_prompt("a")
    qtbot.waitUntil(lambda: panel.error.isVisible(), timeout=20000)
    assert "at least two tokens" in panel.error.text() and panel.report is None
    ready(qtbot, panel, session, "The cat sat on the mat.")
    assert not panel.error.isVisible()


def test_lesson_settings(qtbot, session, panel):
    panel.apply_lesson({"seed": 4, "unit": "bits", "unknown": 1})
    assert panel.view.seed.value() == 4 and panel.view.unit.currentText() == "bits"
    with pytest.raises(ValueError):
        panel.apply_lesson({"seed": -1})
    panel.restore_defaults()
    assert panel.lesson_state() == {"seed": 0, "unit": "nats"}


def test_probabilities_never_round_to_certainty_or_zero():
    from lab.ui.widgets.objectives_view import probability

    assert probability(0.9999992847) == "0.999999"
    assert probability(6.39e-10) == "6.39e-10"
    assert probability(0.235) == "0.235"
