"""The waterfall of one decoding step: a table of the chain's stages and their chart."""
from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

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
        self.table.setHorizontalHeaderLabels(["stage", "tokens left", "mass removed", "entropy (bits)"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.chart = WaterfallChart()
        note = QLabel(ORDER_NOTE)
        note.setWordWrap(True)
        note.setStyleSheet("color: #666;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.chart, 1)
        lay.addWidget(note)

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
                    item.setForeground(QColor(150, 150, 150))
                self.table.setItem(r, c, item)
        ids = [c.id for c in view.candidates]
        self.chart.set_stages([(st.name, st.probs[ids]) for st in view.stages if st.applied])

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.chart.set_stages([])
