"""Tokens & embeddings panel, driven the way a user would (offscreen)."""
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

from lab.core import embeddings as E
from lab.core import tokens
from lab.ui.panels.tokens import VIEWS, TokensPanel
from lab.ui.widgets.token_chips import MAX_CHIPS

TEXT = "I sat on the river bank 🙂 שלום"


@pytest.fixture
def panel(make_panel):
    return make_panel(TokensPanel, (460, 760))


def ready(qtbot, panel, session, text, timeout=20000):
    session.set_prompt(text)
    qtbot.waitUntil(lambda: panel.tz is not None and panel.tz.text == text and bool(panel.neigh)
                    and not session.busy, timeout=timeout)


def test_docked_as_a_wide_tab_beside_the_attention_panel(qtbot):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    assert (TokensPanel.panel_id, TokensPanel.title) == ("tokens", "Tokens & embeddings")
    assert win.docks["attention"] in win.tabifiedDockWidgets(win.docks["tokens"])
    win.close()


def test_chips_show_the_tokenizers_tokens_and_counts(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, TEXT)
    tok, _ = tokens.load_tokenizer(str(tiny_gpt2))
    want = tokens.tokenize(tok, TEXT)
    assert panel.tz.ids == want.ids and panel.chips.drawn == want.count
    assert f"{want.count:,}</b> tokens" in panel.counts.text()
    assert f"{len(TEXT)}</b> characters" in panel.counts.text()
    assert panel.ids_view.toPlainText() == ", ".join(map(str, want.ids))
    panel.copy_ids_to_clipboard()
    assert QGuiApplication.clipboard().text() == ", ".join(map(str, want.ids))
    assert panel.context_bar.maximum() == 64 and not panel.context_warning.isVisible()
    assert "&lt;0x..&gt;" in panel.family.text()          # shown as text, not swallowed as a tag
    assert panel.selftest_ready()


def test_hovering_a_chip_highlights_its_characters(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, TEXT)
    tz = panel.tz
    emoji = next(i for i in range(tz.count) if tz.span_text(i) == "🙂")      # after an astral char
    heb = next(i for i in range(tz.count) if "ש" in tz.span_text(i))
    for i in (1, emoji, heb):
        r = panel.chips.chip_rect(i)
        qtbot.mouseMove(panel.chips, r.center())
        qtbot.waitUntil(lambda: panel.chips.hover == i, timeout=2000)
        assert panel.source.highlighted_text() == tz.span_text(i)


def test_clicking_a_chip_selects_the_token_and_shows_its_neighbours(qtbot, session, panel, tiny_gpt2, load_and_wait,
                                                                    loaded):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, TEXT)
    i = next(k for k in range(panel.tz.count) if panel.tz.span_text(k) == " bank")
    qtbot.mouseClick(panel.chips, Qt.LeftButton, pos=panel.chips.chip_rect(i).center())
    assert session.selection.token == i
    qtbot.waitUntil(lambda: panel.neigh and panel.neigh[0].token_id == panel.tz.ids[i], timeout=10000)
    lm = loaded("gpt2")
    want = E.neighbours(lm, panel.tz.ids[i], 10)
    shown = [int(panel.neigh_in.item(r, 2).text()) for r in range(panel.neigh_in.rowCount())]
    assert shown == [n.id for n in want.items]
    assert panel.chips.selected == i
    assert not panel.neigh_out.isVisibleTo(panel)            # GPT-2 ties its output embeddings
    session.select(token=2)                                   # another panel selects a token
    assert panel.chips.selected == 2


def test_untied_model_shows_output_neighbours_and_rope(qtbot, session, panel, tiny_llama, load_and_wait):
    load_and_wait(qtbot, session, tiny_llama)
    ready(qtbot, panel, session, "the river bank")
    assert len(panel.neigh) == 2 and panel.neigh[1].which == "output"
    assert panel.neigh_out.rowCount() == 10
    qtbot.waitUntil(lambda: panel.positions is not None, timeout=10000)
    assert panel.positions.kind == "rope" and "RoPE" in panel.pos_source.text()


def test_readable_toggle_replaces_markers(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "the river bank\nok")
    assert any(lab.startswith("Ġ") for lab in panel.chips._labels)
    panel.readable.setChecked(True)
    assert not any("Ġ" in lab for lab in panel.chips._labels)
    assert "↵" in panel.chips._labels


def test_context_window_warning(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "the river bank " * 40)
    assert panel.tz.count > 64
    assert panel.context_warning.isVisibleTo(panel) and "at most 64" in panel.context_warning.text()


@pytest.mark.parametrize("text", ["", "   \n\t ", "a\x00b\x07c\x1b", "e\u0301 👩‍👩‍👧 naïve", "שלום עולם مرحبا"],
                         ids=["empty", "whitespace", "control", "emoji-combining", "rtl"])
def test_bad_inputs_render_with_correct_spans(qtbot, session, panel, tiny_bert, text, load_and_wait):
    load_and_wait(qtbot, session, tiny_bert)
    session.set_prompt(text)
    qtbot.waitUntil(lambda: panel.tz is not None and panel.tz.text == text and not session.busy, timeout=20000)
    tz = panel.tz
    assert panel.chips.drawn == tz.count and tz.special[0] and tz.special[-1]     # [CLS] ... [SEP]
    for i in range(tz.count):
        if not tz.special[i]:
            panel.chips.set_hover(i)
            assert panel.source.highlighted_text() == tz.span_text(i) == text[tz.starts[i]:tz.ends[i]]
    img = panel.chips.grab().toImage()
    assert not img.isNull()


def test_one_megabyte_paste_stays_responsive(qtbot, session, panel, tiny_bert, load_and_wait):
    load_and_wait(qtbot, session, tiny_bert)
    unit = "The teacher taught the students. naïve 🙂 שלום\n"
    text = unit * (1_000_000 // len(unit.encode()) + 1)
    session.set_prompt(text)
    qtbot.waitUntil(lambda: panel.tz is not None and panel.tz.text == text and not session.busy, timeout=60000)
    assert panel.tz.count > MAX_CHIPS and panel.chips.drawn == MAX_CHIPS
    assert panel.chips_note.isVisibleTo(panel) and "first 20,000" in panel.chips_note.text()
    last = panel.chips.drawn - 1
    assert panel.tz.span_text(last) == text[panel.tz.starts[last]:panel.tz.ends[last]]
    assert panel.embed_view.values.shape[0] == 512


def test_typing_fast_shows_the_last_text(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    for k in range(1, 14):
        session.set_prompt("the river bank"[:k])
    qtbot.waitUntil(lambda: panel.tz is not None and panel.tz.text == "the river ban" and not session.busy,
                    timeout=10000)


def test_compare_two_tokenizers(qtbot, session, panel, tiny_gpt2, tiny_bert, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "I sat on the river bank")
    panel.run_compare(str(tiny_bert))
    qtbot.waitUntil(lambda: panel.comparison is not None, timeout=10000)
    cmp = panel.comparison
    assert cmp.b.pieces[0] == "[CLS]" and panel.compare_table.rowCount() == len(cmp.spans)
    assert f"{cmp.a.count:,} tokens" in panel.compare_counts.text() and f"{cmp.b.count:,} tokens" in panel.compare_counts.text()
    river = next(r for r in range(panel.compare_table.rowCount()) if panel.compare_table.item(r, 0).text() == " river")
    assert "Ġriv" in panel.compare_table.item(river, 1).text() and panel.compare_table.item(river, 2).text() == "river"
    panel.run_compare("/no/such/model")
    qtbot.waitUntil(lambda: "does not exist" in panel.compare_counts.text(), timeout=10000)


def test_bank_preset_plots_one_cosine_per_layer(qtbot, session, panel, tiny_gpt2, load_and_wait, loaded):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "dog bites man")
    panel.tabs.setCurrentIndex(VIEWS.index("context"))
    qtbot.waitUntil(lambda: panel.context_result is not None, timeout=10000)
    lm = loaded("gpt2")
    want = E.context_similarity(lm, *E.BANK_PRESET)
    np.testing.assert_allclose(panel.ctx_view.values, want.cosine, rtol=1e-5)
    # the axis starts at 0, and the caption says what layer 0 compares (token + its position)
    assert panel.ctx_view.viewRange()[1][0] == pytest.approx(0.0)
    assert "position" in panel.ctx_note.text() and want.layer0.split(" (")[0] in panel.ctx_note.text()
    panel.context_view.token_only.setChecked(True)       # the token rows alone: the same word is 1.0
    assert panel.ctx_view.values[0] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(panel.ctx_view.values[1:], want.cosine[1:], rtol=1e-5)
    assert "token embedding rows alone" in panel.ctx_note.text()
    panel.ctx_word_b.setText("money")
    panel.run_context()
    qtbot.waitUntil(lambda: "does not occur" in panel.ctx_note.text(), timeout=10000)


def test_every_view_exports_png_and_csv(qtbot, session, panel, tiny_gpt2, tiny_t5, tmp_path, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "I sat on the river bank")
    panel.run_compare(str(tiny_t5))
    panel.bank_preset()
    qtbot.waitUntil(lambda: panel.comparison is not None and panel.context_result is not None
                    and panel.positions is not None and panel.proj is not None, timeout=20000)
    for view in VIEWS:
        panel.tabs.setCurrentIndex(VIEWS.index(view))
        png, csv = tmp_path / f"{view}.png", tmp_path / f"{view}.csv"
        assert panel.export_view_png(png), view
        img = QImage(str(png))
        assert img.width() > 50 and img.height() > 30, view
        assert panel.export_view_csv(csv), view
        lines = csv.read_text(encoding="utf-8").splitlines()
        assert len(lines) >= 2 and "," in lines[0], view
    assert not list(tmp_path.glob(".*"))            # no temporary files left behind
    assert (tmp_path / "tokens.csv").read_text(encoding="utf-8").count("\n") == panel.tz.count + 1


def test_choosing_a_zoo_tokenizer_compares_at_once(qtbot, session, panel, tiny_gpt2, load_and_wait):
    load_and_wait(qtbot, session, tiny_gpt2)
    ready(qtbot, panel, session, "I sat on the river bank")
    box = panel.compare_model
    assert box.count() > 0
    box.setCurrentIndex(0)
    box.activated.emit(0)                                  # a pick in the list, no Compare click
    qtbot.waitUntil(lambda: panel.comparison is not None, timeout=20000)
    assert panel.comparison.b.count > 0


def test_the_pca_scatter_is_drawn_when_its_tab_is_shown(qtbot, session, panel, tiny_gpt2, load_and_wait):
    """Its text labels are the panel's costliest drawing: a new prompt's projection waits
    behind its tab until the tab is shown (or the view is exported)."""
    load_and_wait(qtbot, session, tiny_gpt2)
    panel.tabs.setCurrentIndex(0)
    session.set_prompt("The teacher taught the students with the book.", immediate=True)
    qtbot.waitUntil(lambda: panel.proj is not None, timeout=30000)
    assert len(panel.proj_view.scatter.data) == 0              # not drawn behind its tab
    panel.tabs.setCurrentIndex(panel.tabs.indexOf(panel.proj_view.parentWidget()))
    assert len(panel.proj_view.scatter.data) == len(panel.proj.coords) > 0
