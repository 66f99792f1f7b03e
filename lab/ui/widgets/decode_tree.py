"""The decode tree: one row per run of tokens between branching points."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem


class DecodeTree(QTreeWidget):
    """Rows from a ``Branch`` tree; the runs on the current path are bold. Click a row:
    ``node_clicked(node_id)`` of the run's last token."""

    node_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setHeaderLabels(["branch", "tokens", "log p", "settings"])
        # the text and the settings share the width; the numbers take what they need
        header = self.header()
        header.setStretchLastSection(False)
        for col, mode in enumerate((QHeaderView.Stretch, QHeaderView.ResizeToContents,
                                    QHeaderView.ResizeToContents, QHeaderView.Stretch)):
            header.setSectionResizeMode(col, mode)
        self.itemClicked.connect(self._clicked)
        self.setToolTip("Each run of tokens between branching points; click one to switch to it (instant).")

    def set_tree(self, root) -> None:
        self.clear()

        def add(branch, parent):
            label = branch.text if branch.text else "(prompt)"
            item = QTreeWidgetItem([label.replace("\n", "⏎"), str(branch.tokens), f"{branch.cum_logprob:.2f}",
                                    branch.settings])
            item.setData(0, Qt.UserRole, branch.node_id)
            if branch.on_path:
                f = item.font(0)
                f.setBold(True)
                item.setFont(0, f)
            (parent.addChild(item) if parent is not None else self.addTopLevelItem(item))
            for ch in branch.children:
                add(ch, item)

        add(root, None)
        self.expandAll()

    def _clicked(self, item, _col) -> None:
        node_id = item.data(0, Qt.UserRole)
        if node_id is not None:
            self.node_clicked.emit(int(node_id))
