"""Object names for the controls that lessons name ("the Run button", "the Context tab").

A lesson step that says "the <Label> <kind>" is checked against a widget named
``lab.core.lessons.control_name(kind, label)`` in the panel the lesson brings forward
(tests/ui/test_lesson_controls.py); these helpers give widgets those names from the label
they show, so a renamed button or tab and a lesson that still uses the old name disagree
in the test, not in front of a class.
"""
from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QTabWidget, QWidget

from lab.core.lessons import control_name


def name_tabs(tabs: QTabWidget) -> None:
    """Each page of ``tabs`` is named "tab-<its title>"."""
    for i in range(tabs.count()):
        tabs.widget(i).setObjectName(control_name("tab", tabs.tabText(i)))


def name_buttons(*buttons: QAbstractButton) -> None:
    """Each button is named "button-<its text>" (an ellipsis or mnemonic is not part of it)."""
    for b in buttons:
        b.setObjectName(control_name("button", b.text().replace("…", "").replace("&&", "\0")
                                     .replace("&", "").replace("\0", "&")))


def name_control(widget: QWidget, kind: str, label: str) -> None:
    """A box or list named after the label beside it: ("list", "Preset") -> "list-preset"."""
    widget.setObjectName(control_name(kind, label))
