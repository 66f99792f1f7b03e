"""The window's panels, built when first needed.

A panel tabbed behind another costs nothing until the user (or a lesson, an export, a
test) reaches it: its plots are built on the dock's first show or on the first lookup in
``LazyPanels``, and it then catches up with the session (model, trace, selection), so
the window paints before the heavy views exist.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Iterator

from lab.ui.panels.base import Panel


class LazyPanels(Mapping):
    """panel_id -> Panel, in registry order; a lookup builds the panel if it is not yet."""

    def __init__(self, ids: list[str], build: Callable[[str], Panel]):
        self._ids = list(ids)
        self._build = build
        self._built: dict[str, Panel] = {}

    def __getitem__(self, panel_id: str) -> Panel:
        if panel_id not in self._built:
            if panel_id not in self._ids:
                raise KeyError(panel_id)
            self._built[panel_id] = self._build(panel_id)
        return self._built[panel_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def is_built(self, panel_id: str) -> bool:
        return panel_id in self._built

    def built(self) -> dict[str, Panel]:
        """The panels built so far (what a check over live widgets should look at)."""
        return {pid: self._built[pid] for pid in self._ids if pid in self._built}


def catch_up(panel: Panel, session) -> None:
    """Bring a panel built late to where the session is, as if it had followed the signals."""
    if session.card is not None:
        panel.on_model_changed(session.card)
    if session.trace is not None:
        panel.on_trace_changed(session.trace)
        panel.on_selection_changed(session.selection)
