"""The wheel over an unfocused slider or spin box scrolls the panel, not the value."""
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QScrollArea, QSlider, QSpinBox, QVBoxLayout, QWidget

from lab.ui import wheel_guard


def _wheel(widget, qapp):
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    qapp.sendEvent(widget, ev)


def test_wheel_changes_a_value_only_when_focused(qtbot, qapp):
    wheel_guard.install(qapp)
    area = QScrollArea()
    qtbot.addWidget(area)
    body = QWidget()
    lay = QVBoxLayout(body)
    slider, spin = QSlider(Qt.Horizontal), QSpinBox()
    spin.setRange(0, 100)
    spin.setValue(50)
    slider.setRange(0, 100)
    slider.setValue(50)
    lay.addWidget(slider)
    lay.addWidget(spin)
    body.setMinimumHeight(2000)
    area.setWidget(body)
    area.setWidgetResizable(True)
    area.resize(300, 200)
    area.show()
    qtbot.waitExposed(area)
    assert slider.focusPolicy() == Qt.StrongFocus and spin.focusPolicy() == Qt.StrongFocus
    area.setFocus()
    for w in (slider, spin):
        _wheel(w, qapp)
        assert w.value() == 50 and not w.hasFocus()
    assert area.verticalScrollBar().value() > 0           # the panel scrolled instead
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin, qapp)
    assert spin.value() != 50
