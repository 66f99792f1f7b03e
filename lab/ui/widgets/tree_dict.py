"""A QTreeWidget as plain data (for session export): each row's columns, with its children."""
from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget


def tree_widget_dict(tree: QTreeWidget) -> dict:
    """``{"text": first column, <header>: other columns..., "children": [...]}``; several
    top-level rows go under one ``"(prompt)"`` root."""
    head = tree.headerItem()
    names = [head.text(i) or f"column {i}" for i in range(tree.columnCount())]

    def node(item) -> dict:
        d = {"text": item.text(0)}
        d.update({names[i]: item.text(i) for i in range(1, len(names))})
        d["children"] = [node(item.child(i)) for i in range(item.childCount())]
        return d

    roots = [node(tree.topLevelItem(i)) for i in range(tree.topLevelItemCount())]
    return roots[0] if len(roots) == 1 else {"text": "(prompt)", "children": roots}
