"""The precision panel's "Number formats" tab: a number in each format and the table (left),
a weight tensor's histogram and errors (right), the prompt at each precision (below).

Layout only: the parts are ``NumberFormatsView`` and the widgets of ``weight_formats``;
the panel sends their requests to the worker. Scrolls rather than squeezes when small (each part's minimum size holds).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QVBoxLayout, QWidget

from lab.ui.widgets.number_formats import NumberFormatsView
from lab.ui.widgets.weight_formats import PrecisionCompare, WeightHistogram


class FormatsView(QWidget):
    #: Narrower than this, the weights go below the number (and the tab scrolls down).
    SIDE_BY_SIDE_WIDTH = 1180

    def __init__(self, parent=None):
        super().__init__(parent)
        self.number = NumberFormatsView()
        self.weights = WeightHistogram()
        self.compare = PrecisionCompare()
        top = self.top = QSplitter(Qt.Horizontal)
        top.setChildrenCollapsible(False)
        top.addWidget(self.number)
        top.addWidget(self.weights)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        self.weights.setMinimumWidth(300)
        body = QSplitter(Qt.Vertical)
        body.setChildrenCollapsible(False)
        body.addWidget(top)
        body.addWidget(self.compare)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 1)
        content = self.content = QWidget()
        lay = QVBoxLayout(content)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(body)
        scroll = QScrollArea()
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def resizeEvent(self, event) -> None:
        """Side by side when wide; the weights under the number when narrow."""
        wide = event.size().width() >= self.SIDE_BY_SIDE_WIDTH
        orientation = Qt.Horizontal if wide else Qt.Vertical
        if orientation != self.top.orientation():
            self.top.setOrientation(orientation)
            if not wide:    # stacked: the number as tall as it needs, the histogram the rest
                self.top.setSizes([self.number.sizeHint().height(), 10_000])
        super().resizeEvent(event)
