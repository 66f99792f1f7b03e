"""Sliders and spin boxes take the mouse wheel only when they have the keyboard focus, so
scrolling a panel past them never changes a value (an app-wide event filter)."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QApplication, QScrollBar

_GUARDED = (QAbstractSlider, QAbstractSpinBox)


def _guarded(obj) -> bool:
    return isinstance(obj, _GUARDED) and not isinstance(obj, QScrollBar)   # scroll bars scroll


class WheelGuard(QObject):
    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if not _guarded(obj):
            return False
        if kind == QEvent.Polish and obj.focusPolicy() == Qt.WheelFocus:
            obj.setFocusPolicy(Qt.StrongFocus)          # the wheel no longer gives focus
        elif kind == QEvent.Wheel and not obj.hasFocus():
            parent = obj.parentWidget()
            while parent is not None:                   # the scroll goes to what holds it
                event.accept()
                QCoreApplication.sendEvent(parent, event)
                if event.isAccepted():
                    break
                parent = parent.parentWidget()
            return True
        return False


def install(app: QApplication) -> WheelGuard:
    """Install the guard once on ``app``; returns it."""
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
    return guard
