"""The decoding panel driven like a user would, offscreen."""
import pytest

from lab.ui.panels.base import panel_classes
from lab.ui.panels.decoding import DecodingPanel, build_prompt, parse_examples
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
    assert "transformers' defaults" in panel.defaults_label.text()
    panel.top_p.setValue(0.0)
    assert panel.top_p.value() > 0
    panel.top_p.setValue(1.5)
    assert panel.top_p.value() == 1.0
    panel.top_k.setValue(-1)
    assert panel.top_k.value() == 0 and panel.top_k.text() == "0 (off)"
    panel.temperature.setValue(-1)
    assert panel.temperature.value() == 0.0
    panel.strategy.setCurrentIndex(1)
    assert "greedy now" in panel.temp_note.text()
    assert not panel.settings().do_sample
    # the pending first step is on screen with at least 20 candidates
    assert len(panel._snap["view"].candidates) >= 20


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
    snap = panel._snap
    assert snap["settings"].strategy == "sample" and snap["settings"].temperature == 0.7
    assert snap["max_new_tokens"] == 33 and "of 33 new tokens" in panel.status.text()
    assert "no_repeat_ngram_size=2" in panel.defaults_label.text()
    assert [st.name for st in snap["view"].stages][:3] == ["raw", "penalties", "rules"]
    panel.step_btn.click()
    settle(qtbot, session)
    assert len(panel._snap["timeline"]) == 1 and panel._snap["settings"].strategy == "sample"


def test_step_back_and_the_text_strip(make, qtbot, tiny_gpt2):
    session, panel = make("tiny_gpt2")
    for _ in range(3):
        panel.step_btn.click()
        settle(qtbot, session)
    snap = panel._snap
    assert len(snap["timeline"]) == 3 and snap["view"].chosen_id == snap["timeline"][-1].token_id
    assert panel.text.toHtml().count('href="s') == 3
    from lab.core import models
    from lab.core.decoding import DecodeSession
    from lab.core.sampling import SamplingSettings

    ref = DecodeSession(models.load(str(tiny_gpt2)), PROMPT, SamplingSettings(max_new_tokens=3))
    ref.run()
    assert [t.token_id for t in snap["timeline"]] == ref.generated_ids()
    panel.back_btn.click()
    settle(qtbot, session)
    assert len(panel._snap["timeline"]) == 2
    assert "2 of 20 new tokens" in panel.status.text()


def test_run_animates_and_stops_when_asked(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.max_new.setValue(40)
    panel.stop_eos.setChecked(False)
    panel.speed.setValue(60)
    settle(qtbot, session)
    panel.run_btn.click()
    assert panel.running and panel.run_btn.text() == "Stop"
    qtbot.waitUntil(lambda: len(panel._snap["timeline"]) >= 3, timeout=20000)   # the GUI kept processing events
    panel.run_btn.click()
    assert not panel.running
    settle(qtbot, session)
    n = len(panel._snap["timeline"])
    qtbot.wait(300)
    assert len(panel._snap["timeline"]) == n < 40
    panel.speed.setValue(0)
    panel.run_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert len(panel._snap["timeline"]) == 40 and panel._snap["stop"] == "max"
    assert "max new tokens" in panel.status.text()


def test_click_a_candidate_to_branch_and_switch_in_the_tree(make, qtbot):
    session, panel = make("tiny_gpt2")
    for _ in range(3):
        panel.step()
        settle(qtbot, session)
    main = [t.token_id for t in panel._snap["timeline"]]
    other = next(c for c in panel._snap["view"].candidates if not c.chosen)
    panel.bars.candidate_clicked.emit(other.id)
    settle(qtbot, session)
    assert [t.token_id for t in panel._snap["timeline"]] == main[:2] + [other.id]
    assert panel._snap["view"].how == "forced"
    root = panel.tree.topLevelItem(0)
    assert root.childCount() == 2
    old = next(root.child(i) for i in range(2) if not root.child(i).font(0).bold())
    panel.tree.itemClicked.emit(old, 0)
    settle(qtbot, session)
    assert [t.token_id for t in panel._snap["timeline"]] == main


def test_settings_refilter_the_step_without_the_model(make, qtbot):
    session, panel = make("tiny_gpt2")
    panel.strategy.setCurrentIndex(1)
    panel.step()
    settle(qtbot, session)
    forwards = panel._snap["forwards"]
    panel.top_k.setValue(3)
    qtbot.waitUntil(lambda: panel._snap["view"].settings.top_k == 3, timeout=10000)
    view = panel._snap["view"]
    assert panel._snap["forwards"] == forwards
    assert sum(not c.removed for c in view.candidates) <= 4 and view.stages[4].survivors >= 3
    assert any("top-k" in c.removed_by for c in view.candidates)


def test_seq2seq_steps_move_the_attention_target(make, qtbot):
    session, panel = make("tiny_t5")
    panel.step()
    settle(qtbot, session)
    panel.step()
    settle(qtbot, session)
    assert panel._snap["seq2seq"] and session.target == panel._snap["text"]


def test_fill_mask_panel_and_notes(make, qtbot):
    session, panel = make("tiny_bert", "the cat sat on the [MASK] . the [MASK] bites .")
    snap = panel._snap
    assert snap["kind"] == "fill" and len(snap["views"]) == 2
    assert "[MASK 1]" in panel.text.toPlainText()
    panel.step()
    settle(qtbot, session)
    assert panel._snap["fills"] == 1 and "[MASK 1]" not in panel.text.toPlainText()
    # nothing ends in a masked LM: no P(EOS) row or readout, no EOS / length controls
    assert not panel.chart.eos.isVisible() and "P(EOS)" not in panel.step_title.text()
    assert not panel.stop_eos.isEnabled() and not panel.max_new.isEnabled()
    panel.back()
    settle(qtbot, session)
    assert panel._snap["fills"] == 0
    session.set_prompt("no mask in this one", immediate=True)
    qtbot.waitUntil(lambda: panel._snap is None and "[MASK]" in panel.note.text(), timeout=10000)


def test_decoder_given_a_mask_gets_a_note(make, qtbot):
    session, panel = make("tiny_gpt2", "The [MASK] sat.")
    assert "does not fill in masks" in panel.note.text()
    assert panel.stop_eos.isEnabled() and panel.max_new.isEnabled()
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
    panel.mode.setCurrentText("few-shot")
    panel.examples.setPlainText("\n".join(f"word number {i} => mot numero {i}" for i in range(6)))
    qtbot.waitUntil(lambda: "examples take" in panel.context_label.text(), timeout=10000)
    few_count = panel.context_bar.counts["examples"]
    assert few_count > 40 and panel.context_bar.context == 64
    assert "not enough for max new tokens" in panel.context_label.text()
    panel.use_prompt.click()
    assert session.prompt == panel.template()[0]
    qtbot.waitUntil(lambda: "context window" in panel.note.text(), timeout=20000)   # too long to decode: said so
    panel.mode.setCurrentText("one-shot")
    panel.instruction.setText("Translate.")
    panel.examples.setPlainText("cat => chat\n" + panel.examples.toPlainText())
    qtbot.waitUntil(lambda: "examples take" in panel.context_label.text()
                    and 0 < panel.context_bar.counts["examples"] < few_count / 4, timeout=10000)
    panel.use_prompt.click()
    qtbot.waitUntil(lambda: panel.decoded_prompt == session.prompt and not session.busy, timeout=20000)
    assert "".join(panel._snap["prompt_tokens"]).endswith("Output:")
