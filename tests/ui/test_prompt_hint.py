"""The hint line under the prompt keeps its space: nothing below it moves when a hint comes."""
from lab.ui.panels.prompt import PromptPanel


def test_a_hint_does_not_move_the_layout(qtbot, session, make_panel):
    panel = make_panel(PromptPanel, (900, 160))
    qtbot.waitExposed(panel)
    before = (panel.sizeHint().height(), panel.minimumSizeHint().height(), panel.edit.geometry())
    session.notice.emit("Which word does “with” attend to: “taught” (the teacher used the book) or "
                        "“students”? " * 4)                       # long: several lines' worth
    qtbot.wait(10)
    assert panel.note.text() and panel.note.toolTip().startswith("Which word")
    after = (panel.sizeHint().height(), panel.minimumSizeHint().height(), panel.edit.geometry())
    assert after == before
    panel.edit.setPlainText("typing clears the hint")
    assert panel.note.text() == "" and panel.note.isVisible()
    assert (panel.sizeHint().height(), panel.edit.geometry()) == (before[0], before[2])
