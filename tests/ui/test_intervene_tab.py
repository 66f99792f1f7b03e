"""The Intervene tab of the attention panel: ablation, the head sweep and patching, driven
like a user would, offscreen, with the numbers checked against the core."""
import numpy as np
import pytest

from lab.core import interventions as iv

SENTENCE = "The cat sat on the mat."


def _open(open_attention, qtbot, folder, prompt=SENTENCE):
    """The panel with the sentence traced and its Intervene tab in front."""
    session, panel = open_attention(qtbot, folder, prompt, size=(900, 760))
    panel.tabs.setCurrentWidget(panel.intervene)
    return session, panel


def test_ablate_sweep_and_patch_from_the_tab(qtbot, tiny_gpt2, loaded, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    page = panel.intervene
    # shift-click on two thumbnails, the second one twice (added, then removed again), then a third
    page.add_head("self", 0, 1, extend=True)
    page.add_head("self", 1, 2, extend=True)
    page.add_head("self", 1, 3, extend=True)
    page.add_head("self", 1, 3, extend=True)
    assert page.heads.text() == "0.1, 1.2"
    page.mlp_blocks.setText("1")
    page.ablate_run.button.click()
    idle(qtbot, session)
    ref = iv.ablate(loaded("gpt2"), SENTENCE, heads=[("self", 0, 1), ("self", 1, 2)], mlp=[("self", 1)])
    assert page.table.rowCount() == 10
    assert page.table.item(0, 3).text() == f"{ref.top[0].delta:+.4f}"
    assert f"{ref.delta_logp:+.3f}" in page.ablate_note.text() and "KL" in page.ablate_note.text()
    # the sweep: a layer x head heatmap equal to the core's, with the chosen heads outlined
    page.pages.setCurrentIndex(1)
    page.sweep_run.button.click()
    idle(qtbot, session)
    sw = iv.sweep(loaded("gpt2"), SENTENCE)
    np.testing.assert_allclose(page.sweep_map.matrix, sw.maps["self"], atol=1e-5)
    assert len(page.sweep_map._marks) == 2
    assert page.sweep_run.bar.value() == 1000 and not page.sweep_run.cancel.isEnabled()
    # a plain click on a cell picks that head alone and selects it everywhere
    page._sweep_clicked(1, 0)
    assert page.heads.text() == "1.0" and session.selection.layer == 1 and session.selection.head == 0
    # patching: different lengths are refused with an offer to align; aligning gives the map
    page.pages.setCurrentIndex(2)
    page.clean.setText("The cat sat on the mat.")
    page.corrupt.setText("The big dog sat on the mat.")
    page.answer.setText(" the")
    page.wrong.setText(" cat")
    page.patch_run.button.click()
    idle(qtbot, session)
    assert "align on the shorter" in page.patch_note.text().lower() and page.align.isVisible()
    assert page.patch_map.matrix is None
    page.align.click()
    idle(qtbot, session)
    assert not page.align.isVisible()
    assert page.patch_map.matrix is not None and page.patch_map.matrix.shape[0] == 2
    assert "Aligned on the shorter" in page.patch_note.text()
    assert page.patch_map.col_labels[-1] == "."
    session.shutdown()


def test_bad_input_is_an_inline_note_and_the_worker_lives_on(qtbot, tiny_gpt2, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    page = panel.intervene
    page.ablate_run.button.click()               # nothing selected
    idle(qtbot, session)
    assert "Nothing is selected" in page.ablate_note.text()
    page.heads.setText("0.9")
    page.ablate_run.button.click()
    idle(qtbot, session)
    assert "out of range" in page.ablate_note.text()
    page.heads.setText("0.0")
    page.target.setText("mat cat")              # several tokens: the first piece, and a note says so
    page.ablate_run.button.click()
    idle(qtbot, session)
    assert "first piece" in page.ablate_note.text() and page.table.rowCount() == 10
    assert page.ablate_run.button.isEnabled()
    session.shutdown()


def test_sweep_cancel_leaves_the_tab_ready(qtbot, tiny_gpt2, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    page = panel.intervene
    page.pages.setCurrentIndex(1)
    page.sweep_run.button.click()
    page.sweep_run.cancel.click()
    idle(qtbot, session)
    assert page.sweep_run.button.isEnabled() and not page.sweep_run.cancel.isEnabled()
    session.shutdown()


@pytest.mark.parametrize("mode", ["ablate", "patch"])
def test_lesson_settings_fill_the_tab_and_run(qtbot, tiny_gpt2, mode, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    panel.apply_lesson({"view": "intervene", "intervene": {
        "mode": mode, "heads": "0.1", "kind": "mean", "clean": "The cat sat on the mat.",
        "corrupt": "The dog sat on the mat.", "answer": " the", "wrong": " cat", "site": "mlp", "run": True}})
    idle(qtbot, session)
    page = panel.intervene
    assert panel.tabs.currentWidget() is page and page.kind.currentData() == "mean"
    if mode == "ablate":
        assert page.table.rowCount() == 10
    else:
        assert page.patch_map.matrix is not None and page.site.currentData() == "mlp"
    session.shutdown()
