"""The decoding panel driven like a user would, offscreen."""
import pytest

from lab.core.prompt_templates import build_prompt, parse_examples
from lab.ui.panels.base import panel_classes
from lab.ui.panels.decoding import DecodingPanel
from lab.ui.session import Session

PROMPT = "The cat sat on the mat."


@pytest.fixture
def make(qtbot, request):
    made = []

    def build(fixture, prompt=PROMPT, *, prompt_first=False, shown=True):
        """``prompt_first``: the prompt is there before the model (``tvlab gui --prompt``);
        ``shown=False``: the panel is a tab behind another one."""
        folder = request.getfixturevalue(fixture)
        session = Session(trace_delay_ms=50)
        panel = DecodingPanel(session)
        qtbot.addWidget(panel)
        panel.resize(1000, 900)
        if shown:
            panel.show()
        made.append(session)
        if prompt_first:
            session.set_prompt(prompt, immediate=True)
        session.load_model(str(folder))
        qtbot.waitUntil(lambda: session.card is not None, timeout=30000)
        if not prompt_first:
            session.set_prompt(prompt, immediate=True)
        qtbot.waitUntil(lambda: panel.decoded_prompt == prompt and not session.busy, timeout=30000)
        return session, panel

    yield build
    for s in made:
        s.shutdown()


def settle(qtbot, session):
    qtbot.waitUntil(lambda: not session.busy, timeout=30000)


def test_panel_is_registered_next_to_attention():
    cls = next(c for c in panel_classes() if c.panel_id == "decoding")
    assert (cls.title, cls.area, cls.tab_with, cls.order) == ("Step-through decoding", "right", "attention", 40)


def test_defaults_shown_and_controls_refuse_invalid_values(make, qtbot):
    session, panel = make("tiny_gpt2")
    s = panel.settings()
    assert (s.strategy, s.temperature, s.top_k, s.top_p) == ("greedy", 1.0, 50, 1.0)
    assert "transformers' defaults" in panel.controls.defaults_label.text()
    panel.controls.top_p.setValue(0.0)
    assert panel.controls.top_p.value() > 0
    panel.controls.top_p.setValue(1.5)
    assert panel.controls.top_p.value() == 1.0
    panel.controls.top_k.setValue(-1)
    assert panel.controls.top_k.value() == 0 and panel.controls.top_k.text() == "0 (off)"
    panel.controls.temperature.setValue(-1)
    assert panel.controls.temperature.value() == 0.0
    panel.controls.strategy.setCurrentIndex(1)
    assert "greedy now" in panel.controls.temp_note.text()
    assert not panel.settings().do_sample
    # the pending first step is on screen with at least 20 candidates
    assert len(panel.snapshot.view.candidates) >= 20


@pytest.fixture
def gpt2_with_rules(tiny_gpt2, tmp_path):
    """tiny_gpt2 whose generation config samples and blocks repeated 2-grams."""
    import json
    import shutil

    folder = tmp_path / "gpt2-rules"
    shutil.copytree(tiny_gpt2, folder)
    gc_path = folder / "generation_config.json"
    gc = json.loads(gc_path.read_text()) if gc_path.exists() else {}
    gc.update(do_sample=True, temperature=0.7, max_new_tokens=33, no_repeat_ngram_size=2)
    gc_path.write_text(json.dumps(gc))
    return folder


def test_first_decode_of_a_new_model_uses_its_generation_config(make, qtbot):
    session, panel = make("gpt2_with_rules", prompt_first=True, shown=False)
    qtbot.wait(600)     # past the typing pause: no second decode replaces the first
    settle(qtbot, session)
    snap = panel.snapshot
    assert snap.settings.strategy == "sample" and snap.settings.temperature == 0.7
    assert snap.max_new_tokens == 33 and "of 33 new tokens" in panel.status.text()
    assert "no_repeat_ngram_size=2" in panel.controls.defaults_label.text()
    assert [st.name for st in snap.view.stages][:3] == ["raw", "penalties", "rules"]
    panel.step_btn.click()
    settle(qtbot, session)
    assert len(panel.snapshot.timeline) == 1 and panel.snapshot.settings.strategy == "sample"


def test_step_back_and_the_text_strip(make, qtbot, tiny_gpt2):
    session, panel = make("tiny_gpt2")
    for _ in range(3):
        panel.step_btn.click()
        settle(qtbot, session)
    snap = panel.snapshot
    assert len(snap.timeline) == 3 and snap.view.chosen_id == snap.timeline[-1].token_id
    assert panel.text.toHtml().count('href="s') == 3
    from lab.core import models
    from lab.core.decoding import DecodeSession
    from lab.core.sampling import SamplingSettings

    ref = DecodeSession(models.load(str(tiny_gpt2)), PROMPT, SamplingSettings(max_new_tokens=3))
    ref.run()
    assert [t.token_id for t in snap.timeline] == ref.generated_ids()
    panel.back_btn.click()
    settle(qtbot, session)
    assert len(panel.snapshot.timeline) == 2
    assert "2 of 20 new tokens" in panel.status.text()


def test_run_animates_and_stops_when_asked(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.controls.max_new.setValue(40)
    panel.controls.stop_eos.setChecked(False)
    panel.speed.setValue(60)
    settle(qtbot, session)
    panel.run_btn.click()
    assert panel.running and panel.run_btn.text() == "Stop"
    qtbot.waitUntil(lambda: len(panel.snapshot.timeline) >= 3, timeout=20000)   # the GUI kept processing events
    panel.run_btn.click()
    assert not panel.running
    settle(qtbot, session)
    n = len(panel.snapshot.timeline)
    qtbot.wait(300)
    assert len(panel.snapshot.timeline) == n < 40
    panel.speed.setValue(0)
    panel.run_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert len(panel.snapshot.timeline) == 40 and panel.snapshot.stop == "max"
    assert "max new tokens" in panel.status.text()


def test_click_a_candidate_to_branch_and_switch_in_the_tree(make, qtbot):
    session, panel = make("tiny_gpt2")
    for _ in range(3):
        panel.step()
        settle(qtbot, session)
    main = [t.token_id for t in panel.snapshot.timeline]
    other = next(c for c in panel.snapshot.view.candidates if not c.chosen)
    panel.bars.candidate_clicked.emit(other.id)
    settle(qtbot, session)
    assert [t.token_id for t in panel.snapshot.timeline] == main[:2] + [other.id]
    assert panel.snapshot.view.how == "forced"
    root = panel.tree.topLevelItem(0)
    assert root.childCount() == 2
    old = next(root.child(i) for i in range(2) if not root.child(i).font(0).bold())
    panel.tree.itemClicked.emit(old, 0)
    settle(qtbot, session)
    assert [t.token_id for t in panel.snapshot.timeline] == main


def test_settings_refilter_the_step_without_the_model(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.controls.strategy.setCurrentIndex(1)
    panel.step()
    settle(qtbot, session)
    forwards = panel.snapshot.forwards
    panel.controls.top_k.setValue(3)
    qtbot.waitUntil(lambda: panel.snapshot.view.settings.top_k == 3, timeout=10000)
    view = panel.snapshot.view
    assert panel.snapshot.forwards == forwards
    assert sum(not c.removed for c in view.candidates) <= 4 and view.stages[4].survivors >= 3
    assert any("top-k" in c.removed_by for c in view.candidates)


def test_seq2seq_steps_are_followed_in_the_trace_and_the_target_stays_the_users(make, qtbot, tiny_gpt2, load_and_wait):
    session, panel = make("tiny_t5")
    session.set_target("le chat")                 # the user's target text
    notices = []
    session.notice.connect(notices.append)
    panel.controls.stop_eos.setChecked(False)
    settle(qtbot, session)
    word = next(c for c in panel.snapshot.view.candidates if c.token.strip().isalpha())
    panel.force(word.id)                          # a word, so the decoded text is not empty
    settle(qtbot, session)
    panel.step()
    settle(qtbot, session)
    text = panel.snapshot.text
    assert panel.snapshot.seq2seq and len(panel.snapshot.timeline) == 2 and word.token.strip() in text
    # "attention follows": the attention view traces the decoded text, the cross stack on its newest token
    qtbot.waitUntil(lambda: session.trace is not None and session.trace.target_text == text, timeout=20000)
    qtbot.waitUntil(lambda: session.selection.stack == "cross", timeout=5000)
    assert session.target == "le chat"           # never set by the decoding panel
    panel.follow.setChecked(False)                # not following: the trace is the user's target again
    qtbot.waitUntil(lambda: session.trace.target_text == "le chat", timeout=20000)
    assert session.target == "le chat"
    # the user clears the target, follows again, then loads a decoder-only model
    session.set_target("")
    panel.follow.setChecked(True)
    qtbot.waitUntil(lambda: session.trace.target_text == text, timeout=20000)
    load_and_wait(qtbot, session, tiny_gpt2)
    qtbot.waitUntil(lambda: panel.snapshot is not None and not panel.snapshot.seq2seq and not session.busy,
                    timeout=30000)
    settle(qtbot, session)
    assert session.target == "" and session.trace is not None and not session.trace.target_text
    assert not [n for n in notices if "target" in n.lower()], notices


def test_fill_mask_panel_and_notes(make, qtbot):
    session, panel = make("tiny_bert", "the cat sat on the [MASK] . the [MASK] bites .")
    snap = panel.snapshot
    assert snap.kind == "fill" and len(snap.views) == 2
    assert "[MASK 1]" in panel.text.toPlainText()
    panel.step()
    settle(qtbot, session)
    assert panel.snapshot.fills == 1 and "[MASK 1]" not in panel.text.toPlainText()
    # nothing ends in a masked LM: no P(EOS) row or readout, no EOS / length controls
    assert not panel.chart.eos.isVisible() and "P(EOS)" not in panel.step_title.text()
    assert not panel.controls.stop_eos.isEnabled() and not panel.controls.max_new.isEnabled()
    panel.back()
    settle(qtbot, session)
    assert panel.snapshot.fills == 0
    session.set_prompt("no mask in this one", immediate=True)
    qtbot.waitUntil(lambda: panel.snapshot.kind == "none" and "[MASK]" in panel.note.text(), timeout=10000)


def test_decoder_given_a_mask_gets_a_note(make, qtbot):
    session, panel = make("tiny_gpt2", "The [MASK] sat.")
    assert "does not fill in masks" in panel.note.text()
    assert panel.controls.stop_eos.isEnabled() and panel.controls.max_new.isEnabled()
    panel.step()
    settle(qtbot, session)
    assert panel.chart.eos.isVisible() and "P(EOS)" in panel.step_title.text()


def test_prompt_helper_builds_templates_and_measures_the_examples(make, qtbot):
    examples = parse_examples("sea otter => loutre de mer\ncheese => fromage\nno arrow here")
    assert examples == [("sea otter", "loutre de mer"), ("cheese", "fromage")]
    zero, parts0 = build_prompt("zero-shot", "Translate.", examples, "apple")
    one, _ = build_prompt("one-shot", "Translate.", examples, "apple")
    few, _ = build_prompt("few-shot", "Translate.", examples, "apple")
    assert "otter" not in zero and "otter" in one and "cheese" not in one and "cheese" in few
    assert zero.endswith("Input: apple\nOutput:") and parts0["examples"] == ""
    session, panel = make("tiny_gpt2")
    panel.helper.mode.setCurrentText("few-shot")
    panel.helper.examples.setPlainText("\n".join(f"word number {i} => mot numero {i}" for i in range(6)))
    qtbot.waitUntil(lambda: "examples take" in panel.helper.context_label.text(), timeout=10000)
    few_count = panel.helper.context_bar.counts["examples"]
    assert few_count > 40 and panel.helper.context_bar.context == 64
    assert "not enough for max new tokens" in panel.helper.context_label.text()
    panel.helper.use_prompt.click()
    assert session.prompt == panel.template()[0]
    qtbot.waitUntil(lambda: "context window" in panel.note.text(), timeout=20000)   # too long to decode: said so
    panel.helper.mode.setCurrentText("one-shot")
    panel.helper.instruction.setText("Translate.")
    panel.helper.examples.setPlainText("cat => chat\n" + panel.helper.examples.toPlainText())
    qtbot.waitUntil(lambda: "examples take" in panel.helper.context_label.text()
                    and 0 < panel.helper.context_bar.counts["examples"] < few_count / 4, timeout=10000)
    panel.helper.use_prompt.click()
    qtbot.waitUntil(lambda: panel.decoded_prompt == session.prompt and not session.busy, timeout=20000)
    assert "".join(panel.snapshot.prompt_tokens).endswith("Output:")


def _run_then_cancel(qtbot, session, panel, cancel):
    """Start a long Run, cancel it between tokens; at most one more step may land after."""
    panel.controls.max_new.setValue(40)
    panel.controls.stop_eos.setChecked(False)
    panel.speed.setValue(150)
    settle(qtbot, session)
    panel.run_btn.click()
    qtbot.waitUntil(lambda: len(panel.snapshot.timeline) >= 2, timeout=20000)
    n = len(panel.snapshot.timeline)
    cancel()
    assert not panel.running and panel.run_btn.text() == "Run"
    settle(qtbot, session)
    qtbot.wait(600)        # four pauses of the Run: a chain still going would have stepped
    settle(qtbot, session)
    assert n <= len(panel.snapshot.timeline) <= n + 1 < 40
    assert not panel.running and panel.run_btn.text() == "Run"


def test_cancel_stops_a_run_within_one_step(make, qtbot):
    session, panel = make("tiny_gpt2")
    _run_then_cancel(qtbot, session, panel, session.cancel)
    panel.run_btn.click()                           # and a new Run still runs to the end
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert len(panel.snapshot.timeline) == 40


def test_the_windows_cancel_action_stops_a_run(qtbot, tiny_gpt2, load_and_wait):
    from PySide6.QtGui import QKeySequence

    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    try:
        session, panel = win.session, win.panels["decoding"]
        load_and_wait(qtbot, session, tiny_gpt2)
        session.set_prompt(PROMPT, immediate=True)
        qtbot.waitUntil(lambda: panel.decoded_prompt == PROMPT and not session.busy, timeout=30000)
        run_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Run")
        cancel = next(a for a in run_menu.actions() if a.shortcut() == QKeySequence("Esc"))
        _run_then_cancel(qtbot, session, panel, cancel.trigger)
    finally:
        win.close()


def test_a_new_model_clears_the_decode_its_charts_and_tree(make, qtbot, tiny_t5, tiny_bert, load_and_wait):
    session, panel = make("tiny_gpt2")
    for _ in range(3):
        panel.step()
        settle(qtbot, session)
    assert len(panel.chart.ent.listDataItems()) == 1 and panel.tree.topLevelItemCount() == 1
    seen = []

    def on_screen(_card):     # runs after the panel's own handler
        seen.append((len(panel.chart.ent.listDataItems()), panel.tree.topLevelItemCount(),
                     panel.text.toHtml().count('href="s'), panel.waterfall.table.rowCount(),
                     panel.step_title.text(), panel.snapshot))

    session.model_changed.connect(on_screen)
    load_and_wait(qtbot, session, tiny_t5)
    assert seen == [(0, 0, 0, 0, "", None)]
    qtbot.waitUntil(lambda: panel.snapshot is not None and panel.snapshot.seq2seq and not session.busy,
                    timeout=30000)
    assert panel.snapshot.timeline == () and panel.tree.topLevelItem(0).childCount() == 0
    # a masked LM given no mask: no decode at all, and nothing of the previous one on screen
    load_and_wait(qtbot, session, tiny_bert)
    qtbot.waitUntil(lambda: panel.snapshot is not None and panel.snapshot.kind == "none", timeout=30000)
    assert not panel.chart.ent.listDataItems() and panel.tree.topLevelItemCount() == 0
    assert 'href="' not in panel.text.toHtml() and panel.waterfall.table.rowCount() == 0
    assert "[MASK]" in panel.note.text()


def test_the_controller_returns_frozen_snapshots_and_forgets_a_replaced_model(tiny_gpt2):
    from dataclasses import FrozenInstanceError

    from lab.core import models
    from lab.core.errors import InputError
    from lab.core.jobs import Job
    from lab.core.sampling import SamplingSettings
    from lab.ui.controllers.decoding import DecodeController

    lm = models.load(str(tiny_gpt2))
    ctl = DecodeController()
    s = SamplingSettings(max_new_tokens=3)
    with pytest.raises(InputError, match="Press Reset"):
        ctl.step(lm, Job(), settings=s, order="left-to-right")
    assert ctl.reset(lm, Job(), prompt=PROMPT, settings=s, order="left-to-right").timeline == ()
    snap = ctl.step(lm, Job(), settings=s, order="left-to-right")
    assert len(snap.timeline) == 1 and isinstance(snap.view.candidates, tuple)
    with pytest.raises(FrozenInstanceError):
        snap.text = "changed"
    refiltered = ctl.view(lm, Job(), settings=s.with_(strategy="sample", top_k=2), order="left-to-right",
                          focus=snap.timeline[0].node_id)
    assert refiltered.forwards == snap.forwards and refiltered.view.refiltered
    ctl.model_replaced()
    with pytest.raises(InputError, match="Press Reset"):
        ctl.step(lm, Job(), settings=s, order="left-to-right")


def test_keys_step_run_and_back(make, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    session, panel = make("tiny_gpt2")
    panel.activateWindow()
    qtbot.waitActive(panel)
    assert "(F10)" in panel.step_btn.toolTip() and "(F5)" in panel.run_btn.toolTip()
    def steps():
        return len(panel.snapshot.timeline) if panel.snapshot is not None else 0

    for n in (1, 2):
        QTest.keyClick(panel, Qt.Key_F10)                 # Step (a shortcut animates the click)
        qtbot.waitUntil(lambda n=n: steps() == n and not session.busy, timeout=30000)
    QTest.keyClick(panel, Qt.Key_F10, Qt.ShiftModifier)   # Back
    qtbot.waitUntil(lambda: steps() == 1 and not session.busy, timeout=30000)
    QTest.keyClick(panel, Qt.Key_F5)                      # Run to max new tokens
    qtbot.waitUntil(lambda: steps() > 1 and not session.busy, timeout=30000)


def test_painted_views_have_accessible_names(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.step_btn.click()
    settle(qtbot, session)
    bars = panel.bars
    assert bars.accessibleName() == "Candidate probabilities"
    chosen = next(c for c in panel.snapshot.view.candidates if c.chosen)
    assert f"chosen {chosen.token!r}" in bars.accessibleDescription()
    assert panel.chart.accessibleName() and "Entropy in bits per step" in panel.chart.accessibleDescription()


def test_run_at_the_end_says_why_it_does_nothing(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.controls.max_new.setValue(2)
    settle(qtbot, session)
    panel.reset()
    settle(qtbot, session)
    panel.toggle_run()
    qtbot.waitUntil(lambda: panel.snapshot is not None and bool(panel.snapshot.stop) and not panel.running
                    and not session.busy, timeout=30000)
    stop = panel.snapshot.stop
    panel.toggle_run()                                    # at the end: nothing to run, and it says so
    assert not panel.running and not panel.note.isHidden()
    assert "Reset" in panel.note.text() and ("max new tokens" in panel.note.text() if stop == "max"
                                              else "end-of-sequence" in panel.note.text())
