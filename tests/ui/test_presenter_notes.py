"""Presenter fonts reach the notes too: a label coloured with a theme tone has a style
sheet, and Qt keeps such a widget's old font when the application font changes."""
from PySide6.QtWidgets import QLabel

from lab.ui import theme
from lab.ui.workshop import presenter


def test_tinted_notes_grow_with_presenter_fonts(qtbot):
    note = QLabel("bard-gpt runs with sdpa attention")
    qtbot.addWidget(note)
    theme.tint(note, "muted")
    note.show()
    qtbot.waitExposed(note)
    qtbot.wait(10)                     # polished with the normal font first
    before = note.font().pointSizeF()
    presenter.set_large_fonts(True)
    try:
        qtbot.wait(10)
        assert note.font().pointSizeF() >= before * 1.3
    finally:
        presenter.set_large_fonts(False)
    qtbot.wait(10)
    assert note.font().pointSizeF() == before
