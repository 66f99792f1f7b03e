"""The waterfall of one decoding step: a table of the chain's stages and their chart."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QSizePolicy, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from lab.ui import theme as lab_theme
from lab.ui.widgets.column_scroll import ColumnScroll
from lab.ui.widgets.prob_bars import WaterfallChart

ORDER_NOTE = ("Order as in transformers' generate(): penalties → the model's rules → temperature → top-k → "
              "top-p → min-p; greedy applies only the penalties and rules. Rules (n-gram blocking, minimum "
              "length, suppressed tokens...) come from the model's generation config, when it sets any.")


class WaterfallView(QWidget):
    """Stage by stage: tokens left, mass removed, entropy; below, the candidates' probability
    after each stage."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["stage", "tokens\nleft", "mass\nremoved", "entropy\n(bits)"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setStretchLastSection(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        # every stage shows: the table is as tall as its rows, the chart takes the rest
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.chart = WaterfallChart()
        self.chart.setMinimumHeight(120)
        note = QLabel(ORDER_NOTE)
        note.setWordWrap(True)
        lab_theme.tint(note, "muted")
        inner = QWidget()
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        lay.addWidget(self.chart, 1)
        lay.addWidget(note)
        outer = QVBoxLayout(self)      # short of room, the stages scroll up and down, never overlap
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(ColumnScroll(inner))
        self._fit_rows()

    def _fit_rows(self) -> None:
        t = self.table
        t.resizeRowsToContents()
        rows = sum(t.rowHeight(r) for r in range(t.rowCount())) or t.verticalHeader().defaultSectionSize()
        bar = t.horizontalScrollBar().sizeHint().height() if t.horizontalScrollBar().isVisible() else 0
        t.setFixedHeight(t.horizontalHeader().sizeHint().height() + rows + 2 * t.frameWidth() + bar)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.FontChange:
            self._fit_rows()

    def set_view(self, view) -> None:
        """A ``StepView``: its stages, and its candidates' probabilities through them."""
        self.table.setRowCount(len(view.stages))
        for r, st in enumerate(view.stages):
            cells = [st.name if st.applied else f"{st.name} (off)", f"{st.survivors:,}",
                     f"{st.mass_removed:.3f}" if st.applied else "—", f"{max(0.0, st.entropy_bits):.2f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(st.label if st.applied else st.note)
                if not st.applied:
                    item.setForeground(QColor(lab_theme.tone("faint")))
                self.table.setItem(r, c, item)
        self._fit_rows()
        ids = [c.id for c in view.candidates]
        self.chart.set_stages([(st.name, st.probs[ids]) for st in view.stages if st.applied])

    def clear(self) -> None:
        self.table.setRowCount(0)
        self._fit_rows()
        self.chart.set_stages([])
