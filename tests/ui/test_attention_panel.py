"""The Layers & attention panel, driven like a user would, offscreen."""
import numpy as np
from PySide6.QtCore import QPointF

from lab.ui.panels.attention import attention_examples

SENTENCE = "The teacher taught the students with the book."


def _open(open_attention, qtbot, folder, prompt=SENTENCE):
    return open_attention(qtbot, folder, prompt)


def test_head_view_shows_the_selected_head_with_masked_future(qtbot, tiny_gpt2, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    tr = session.trace
    assert panel.tabs.tabText(panel.tabs.currentIndex()) == "Head"
    shown = panel.head_view.matrix
    raw = tr.attentions["self"][0, 0]
    # the future is drawn as masked (NaN over a hatched background), never as a zero
    upper = np.triu(np.ones_like(raw, dtype=bool), 1)
    assert np.isnan(shown[upper]).all() and panel.head_view.masked_bg.isVisible()
    np.testing.assert_array_equal(shown[~upper], raw[~upper])
    # fixed colour scale: levels never follow the data
    assert tuple(panel.head_view.image.levels) == (0.0, 1.0)
    assert panel.head_view.image.lut.shape[0] == 256
    # changing the head spin box selects it for every panel and redraws
    panel.head.setValue(3)
    assert session.selection.head == 3
    np.testing.assert_array_equal(np.nan_to_num(panel.head_view.matrix), tr.attentions["self"][0, 3])
    # a selection made elsewhere (another panel) drives this one
    session.select(layer=1, head=2)
    assert panel.layer.value() == 1 and panel.head.value() == 2
    np.testing.assert_array_equal(np.nan_to_num(panel.head_view.matrix), tr.attentions["self"][1, 2])
    # token labels on both axes come from the text
    assert panel.head_view.row_labels[0] == "The" and "book" in panel.head_view.col_labels
    session.shutdown()


def test_hover_reads_query_key_and_weight(qtbot, tiny_gpt2, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    hv = panel.head_view
    labels = hv.row_labels
    q = labels.index("with")
    hv.hover(q, 0)
    text = hv.readout.text()
    w = session.trace.attentions["self"][0, 0, q, 0]
    assert "“with”" in text and "“The”" in text and f"{w:.4f}" in text
    hv.hover(0, q)
    assert "masked" in hv.readout.text()
    # the real mouse path: move over the centre of a cell in the scene
    vb = hv.plot.getViewBox()
    scene_pt = vb.mapViewToScene(QPointF(0.5, q + 0.5))
    assert hv.cell_at(scene_pt) == (q, 0)
    session.shutdown()


def test_hide_first_token_is_labelled_and_renormalised(qtbot, tiny_gpt2, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    assert not panel.banner.isVisible()
    panel.hide_first.setChecked(True)
    assert panel.banner.isVisible() and "renormalised" in panel.banner.text()
    m = panel.head_view.matrix
    raw = session.trace.attentions["self"][0, 0]
    assert m.shape == (raw.shape[0] - 1, raw.shape[1] - 1)
    np.testing.assert_allclose(np.nansum(m, axis=1), 1.0, atol=1e-5)
    expected = raw[1:, 1:] / raw[1:, 1:].sum(-1, keepdims=True)
    np.testing.assert_allclose(np.nan_to_num(m), np.tril(expected), atol=1e-6)
    assert panel.head_view.row_labels[0] != "The"
    panel.hide_first.setChecked(False)
    assert not panel.banner.isVisible() and panel.head_view.matrix.shape == raw.shape
    session.shutdown()


def test_model_view_click_opens_the_head(qtbot, tiny_gpt2, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    panel.tabs.setCurrentWidget(panel.model_view)
    idle(qtbot, session)
    assert panel.model_view.shape == (2, 4)
    panel.model_view.picked.emit(1, 3)
    assert panel.tabs.currentWidget() is panel.head_view
    assert (session.selection.layer, session.selection.head) == (1, 3)
    np.testing.assert_array_equal(np.nan_to_num(panel.head_view.matrix), session.trace.attentions["self"][1, 3])
    session.shutdown()


def test_lines_aggregates_and_gqa(qtbot, tiny_llama, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_llama)
    tr = session.trace
    session.select(token=5)
    panel.tabs.setCurrentWidget(panel.lines_page)
    assert panel.lines_view.rows_drawn() == list(range(len(tr.tokens)))
    panel.lines_all.setChecked(False)
    assert panel.lines_view.rows_drawn() == [5]
    panel.tabs.setCurrentWidget(panel.agg_page)
    idle(qtbot, session)
    np.testing.assert_allclose(np.nan_to_num(panel.agg_view.matrix), tr.attentions["self"][0].mean(0), atol=1e-6)
    panel.agg_kind.setCurrentIndex(panel.agg_kind.findData("rollout"))
    session.select(layer=1)
    idle(qtbot, session)
    np.testing.assert_allclose(np.nan_to_num(panel.agg_view.matrix), tr.aggregate("self", 1, "rollout"), atol=1e-6)
    assert "4 query heads share 2 key/value heads" in panel.gqa_label.text()
    heights = panel.entropy_plot.bars.opts["height"]
    np.testing.assert_allclose(heights, tr.entropy("self")[1], atol=1e-6)
    session.shutdown()


def test_logit_lens_view(qtbot, tiny_gpt2, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    session.select(token=3)
    panel.tabs.setCurrentWidget(panel.lens_page)
    qtbot.waitUntil(lambda: panel.lens_table.rowCount() == 3, timeout=30000)
    assert panel.lens_table.item(0, 0).text() == "embeddings"
    assert panel.lens_table.item(2, 6).text() == "1"       # the last layer ranks the final prediction first
    assert "position 3" in panel.lens_title.text()
    session.shutdown()


def test_seq2seq_stacks_and_target(qtbot, tiny_t5, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_t5, prompt=None)
    session.set_target("the book")
    session.set_prompt(SENTENCE, immediate=True)
    qtbot.waitUntil(lambda: session.trace is not None and session.trace.target_text == "the book"
                    and panel.selftest_ready(), timeout=60000)
    stacks = [panel.stack.itemData(i) for i in range(panel.stack.count())]
    assert stacks == ["encoder", "decoder", "cross"]
    panel.stack.setCurrentIndex(2)
    assert session.selection.stack == "cross"
    tr = session.trace
    m = panel.head_view.matrix
    assert m.shape == (len(tr.target_tokens), len(tr.tokens))   # target on one axis, source on the other
    assert not np.isnan(m).any()                               # cross-attention masks nothing
    assert len(panel.head_view.row_labels) == len(tr.target_tokens)
    session.shutdown()


def test_example_sentence_sets_prompt_and_focus(qtbot, tiny_gpt2, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2, prompt=None)
    examples = attention_examples()
    assert len(examples) == 6 and panel.example.itemText(0) == "Example sentences"
    i = next(i for i, ex in enumerate(examples) if ex.word == "it")
    panel.example.setCurrentIndex(i + 1)
    panel.example.activated.emit(i + 1)
    assert session.prompt == examples[i].text and panel.example.currentIndex() == 0
    qtbot.waitUntil(lambda: session.trace is not None and session.selection.token >= 0, timeout=60000)
    labels = panel.head_view.row_labels
    assert labels[session.selection.token] == "it"
    session.shutdown()


def test_exports(qtbot, tiny_gpt2, tmp_path, open_attention):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    png = panel.export_view(tmp_path / "head.png")
    panel.tabs.setCurrentWidget(panel.lines_page)
    svg = panel.export_view(tmp_path / "lines", "svg")
    assert png and (tmp_path / "head.png").stat().st_size > 1000
    assert svg.endswith(".svg") and "<svg" in open(svg, encoding="utf-8").read()
    panel.export_npz(tmp_path / "raw.npz")
    qtbot.waitUntil(lambda: (tmp_path / "raw.npz").exists(), timeout=10000)
    data = np.load(tmp_path / "raw.npz")
    assert data["self"].dtype == np.float32 and data["self"].shape == session.trace.attentions["self"].shape
    assert list(data["tokens"]) == session.trace.tokens
    session.shutdown()


def test_resident_trace_fetches_heads_on_the_worker(qtbot, tiny_gpt2, open_attention):
    """A GPU-style trace (tensors kept where computed) still draws every head."""
    from lab.core import trace as core_trace

    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    done = []
    session.request("test.capture", lambda lm, job: core_trace.capture(lm, SENTENCE, resident=True), done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=30000)
    session._on_trace(done[0])
    session.select(layer=1, head=1)
    assert not done[0].head_ready("self", 1, 1) or panel.head_view.matrix is not None
    qtbot.waitUntil(lambda: done[0].head_ready("self", 1, 1) and panel._shown_key is not None
                    and panel._shown_key[2:4] == (1, 1), timeout=10000)
    np.testing.assert_allclose(np.nan_to_num(panel.head_view.matrix), done[0].head("self", 1, 1))
    session.shutdown()


def test_lesson_settings_choose_view_and_options(qtbot, tiny_gpt2, open_attention, idle):
    session, panel = _open(open_attention, qtbot, tiny_gpt2)
    panel.apply_lesson({"view": "aggregates", "aggregate": "max", "hide_first": True})
    assert panel.tabs.currentWidget() is panel.agg_page and panel.hide_first.isChecked()
    idle(qtbot, session)
    raw = session.trace.attentions["self"][0].max(0)
    assert panel.agg_view.matrix.shape == (raw.shape[0] - 1, raw.shape[1] - 1)
    assert panel.banner.isVisible()
    session.shutdown()


def test_example_sentences_picked_in_a_row_always_draw_their_own_trace(qtbot, tiny_gpt2, open_attention):
    """The key word of the next example can sit at the index already selected: the focus
    step then changes nothing, and the heatmap must still be drawn from the new trace."""
    from lab.core.trace import display_tokens

    session, panel = _open(open_attention, qtbot, tiny_gpt2, prompt=None)
    examples = attention_examples()

    def pick(i):
        panel.example.activated.emit(i + 1)
        qtbot.waitUntil(lambda: session.trace is not None and session.trace.text == examples[i].text
                        and not session.busy and panel.selftest_ready(), timeout=60000)
        qtbot.wait(20)

    def shown_matches(i):
        tr = session.trace
        return tr.text == examples[i].text and panel.head_view.row_labels == display_tokens(tr, "self")

    river, money = 1, 2
    pick(money)
    where = session.selection.token                      # "bank" in the money sentence
    pick(river)
    session.select(token=where)                           # the selection already sits there
    pick(money)
    assert shown_matches(money)
    for i in (3, 0, 4, 3, 5):                             # several in a row, without waiting
        panel.example.activated.emit(i + 1)
    qtbot.waitUntil(lambda: session.trace is not None and session.trace.text == examples[5].text
                    and not session.busy, timeout=60000)
    qtbot.wait(50)
    assert shown_matches(5)
    first = panel.head_view.row_labels[session.selection.token]       # "question", or its first piece
    assert first and "question".startswith(first)
    session.shutdown()


def test_a_key_word_cut_into_pieces_selects_its_first_piece(qtbot, tiny_gpt2, open_attention):
    from lab.core.trace import word_token

    session, panel = _open(open_attention, qtbot, tiny_gpt2, prompt=None)
    examples = attention_examples()
    i = next(i for i, ex in enumerate(examples) if ex.word == "question")
    panel.show_example(i)
    qtbot.waitUntil(lambda: session.trace is not None and session.trace.text == examples[i].text
                    and not session.busy, timeout=60000)
    qtbot.wait(20)
    tr = session.trace
    s = tr.text.index("question")
    pieces = [j for j, (a, b) in enumerate(tr.offsets) if a < s + len("question") and b > s]
    assert len(pieces) > 1                                # this tokenizer cuts "question"
    assert session.selection.token == pieces[0] == word_token(tr, "self", "question")
    assert "question".startswith(panel.head_view.row_labels[pieces[0]])
    session.select(token=0)
    panel.show_example(i)                                 # the same sentence again: no new trace
    assert session.selection.token == pieces[0]
    session.shutdown()
