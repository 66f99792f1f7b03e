"""The decoding panel's Compare tab offscreen: the numbers equal the core's, none hides it,
a file that cannot open gives a note and the decode goes on."""
import json
from types import SimpleNamespace

import pytest

from lab.ui.panels.decoding import DecodingPanel
from lab.ui.session import Session
from lab.ui.widgets.decode_compare import DecodeCompareView

PROMPT = "The cat sat on the mat."


@pytest.fixture
def gpt2_panel(qtbot, tiny_gpt2):
    session = Session(trace_delay_ms=50)
    panel = DecodingPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1000, 900)
    panel.show()
    session.load_model(str(tiny_gpt2))
    qtbot.waitUntil(lambda: session.card is not None, timeout=30000)
    session.set_prompt(PROMPT, immediate=True)
    qtbot.waitUntil(lambda: panel.decoded_prompt == PROMPT and not session.busy, timeout=30000)
    yield session, panel
    session.shutdown()


def settle(qtbot, session):
    qtbot.waitUntil(lambda: not session.busy, timeout=30000)


def steps(qtbot, session, panel, n):
    for _ in range(n):
        panel.step_btn.click()
        settle(qtbot, session)


def test_bf16_comparison_shows_the_cores_numbers_and_none_hides_it(gpt2_panel, qtbot, loaded):
    session, panel = gpt2_panel
    view = panel.compare
    assert view.combo.isEnabled() and view.body.isHidden()
    assert [view.combo.itemData(i) for i in range(3)] == [None, "fp16", "bf16"]
    view.choose("bf16")
    settle(qtbot, session)
    steps(qtbot, session, panel, 3)
    snap = panel.snapshot
    cmp = snap.comparison
    assert cmp is not None and not view.body.isHidden() and len(cmp.steps) == 3

    from lab.core.decoding import DecodeComparer, DecodeSession
    from lab.core.precision import twins

    lm = loaded("gpt2")
    ref = DecodeSession(lm, PROMPT, snap.settings)
    for _ in range(3):
        ref.step()
    want = DecodeComparer(twins.open_twin(lm.model, lm.tokenizer, "bf16")).compare(ref)
    assert [s.token_id for s in cmp.steps] == [s.token_id for s in want.steps] == ref.generated_ids()
    assert cmp.agreement == want.agreement and cmp.first_divergence == want.first_divergence
    assert view.kl == pytest.approx([s.kl for s in want.steps], rel=1e-6, abs=1e-12)
    assert f"{want.agreement:.0%}" in view.summary.text() and "torch bf16" in view.summary.text()
    assert "re-reads the whole sequence" in view.note.text()
    # the step in focus is the newest: both top-5 lists as the core computes them
    last = want.steps[-1]
    assert snap.view.node_id == last.node_id
    for table, top in ((view.main_table, last.main_top), (view.twin_table, last.twin_top)):
        assert table.rowCount() == 5
        assert [float(table.item(r, 1).text()) for r in range(5)] == pytest.approx([p for _, _, p in top], abs=1e-4)
        assert [table.item(r, 0).data(0x0100) for r in range(5)] == [i for i, _, _ in top]
    # another step in focus: the twin's probability of the decode's token is shown
    panel.show_step(0)
    settle(qtbot, session)
    first = want.steps[0]
    assert view.step_title.text().startswith("step 1:")
    assert f"{first.twin_prob_of_token:.4f}" in view.step_title.text()
    assert view.twin_table.item(0, 0).data(0x0100) == first.twin_top[0][0]

    view.choose(None)
    settle(qtbot, session)
    assert view.body.isHidden()
    panel.step_btn.click()
    settle(qtbot, session)
    assert panel.snapshot.comparison is None and view.body.isHidden()


def test_an_onnx_file_that_cannot_open_gives_a_note_and_the_decode_goes_on(gpt2_panel, qtbot, tmp_path):
    session, panel = gpt2_panel
    bad = tmp_path / "model-int8.onnx"
    bad.write_bytes(b"not an onnx graph")
    panel.compare.choose(str(bad))
    settle(qtbot, session)
    assert not panel.compare.error.isHidden() and "cannot open" in panel.compare.error.text()
    assert panel.compare.body.isHidden()
    steps(qtbot, session, panel, 2)
    assert len(panel.snapshot.timeline) == 2 and panel.snapshot.comparison is None


def test_the_combo_offers_the_converters_files_of_this_model(qtbot, tmp_path):
    view = DecodeCompareView()
    qtbot.addWidget(view)
    card = SimpleNamespace(name="tiny", ref="/models/tiny", kind="decoder-only")
    (tmp_path / "model-int8.onnx").write_bytes(b"x")
    (tmp_path / "report.json").write_text(json.dumps({"model": "/models/tiny"}))
    view.set_model(card, str(tmp_path))
    labels = [view.combo.itemText(i) for i in range(view.combo.count())]
    assert labels == ["none", "fp16 (torch copy)", "bf16 (torch copy)", "int8 ONNX (converter)", "ONNX file…"]
    assert view.combo.itemData(3) == str(tmp_path / "model-int8.onnx")
    view.set_model(SimpleNamespace(name="other", ref="/models/other", kind="decoder-only"), str(tmp_path))
    assert view.combo.count() == 4                      # another model's file is not offered
    view.set_model(SimpleNamespace(name="bert", ref=None, kind="encoder-only"), None)
    assert not view.combo.isEnabled()


def test_the_controller_compares_closes_and_refuses_a_masked_lm(loaded):
    from lab.core.errors import InputError
    from lab.core.jobs import Job
    from lab.core.sampling import SamplingSettings
    from lab.ui.controllers.decoding import DecodeController

    lm = loaded("gpt2")
    ctl = DecodeController()
    s = SamplingSettings(max_new_tokens=3)
    assert ctl.compare(lm, Job(), settings=s, order="left-to-right", spec="fp16") is None   # no decode yet
    assert ctl.reset(lm, Job(), prompt=PROMPT, settings=s, order="left-to-right").comparison.pending is not None
    snap = ctl.step(lm, Job(), settings=s, order="left-to-right")
    assert snap.comparison.label == "torch fp16" and len(snap.comparison.steps) == 1
    ctl.model_replaced()
    ctl.reset(lm, Job(), prompt=PROMPT, settings=s, order="left-to-right")
    assert ctl.step(lm, Job(), settings=s, order="left-to-right").comparison is None
    with pytest.raises(InputError, match="cannot open|No ONNX file"):
        ctl.compare(lm, Job(), settings=s, order="left-to-right", spec="/nowhere/model-int8.onnx")
    assert ctl.step(lm, Job(), settings=s, order="left-to-right").comparison is None
    with pytest.raises(InputError, match="fill-in-the-mask"):
        ctl.compare(loaded("bert"), Job(), settings=s, order="left-to-right", spec="bf16")
