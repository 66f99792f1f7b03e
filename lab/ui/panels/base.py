"""Panel: the base of every dock panel, and the registry the main window builds from.

A panel declares itself with class attributes (Spyder-style) and is discovered from the
modules of ``lab.ui.panels``; a new panel is a new module with a Panel subclass.

    class TokensPanel(Panel):
        panel_id = "tokens"          # dock objectName, settings key, selftest PNG name
        title = "Tokens & embeddings"
        area = "left"                # left | right | top | bottom
        tab_with = "model"           # panel_id of the dock it is tabbed with by default
        order = 20                   # position in the View menu and the default layout

The session's signals are connected to ``on_model_changed(card)``,
``on_trace_changed(trace)`` and ``on_selection_changed(selection)``; a panel hidden in a
shown window (tabbed behind another) gets the last trace and selection when it is shown,
not every one on the way. Model work goes
through ``self.session.request(channel, fn, on_done)``; never import torch in a panel.

The protocol: everything outside a panel (the main window, the workshop, selftest) talks
to it only through the methods below, which a panel overrides with the same signature
(tests/ui/test_panel_protocol.py checks that). Nobody probes a panel with hasattr or
calls its private methods; a panel writes the shared selection only through
``session.select``.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import QWidget


class Panel(QWidget):
    panel_id: str = ""
    title: str = ""
    area: str = "right"
    tab_with: Optional[str] = None
    order: int = 100
    docked: bool = True      # False: shown as a fixed strip (tool bar) above the docks

    def __init__(self, session, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.session = session
        self.setObjectName(f"panel-{self.panel_id}")
        session.model_changed.connect(self.on_model_changed)
        self._stale = False      # a trace or selection arrived while hidden behind a tab
        session.trace_changed.connect(self._follow_trace)
        session.selection_changed.connect(self._follow_selection)

    def _hidden_in_shown_window(self) -> bool:
        """Closed, or tabbed behind another dock (Qt keeps those "visible", with no region)."""
        win = self.window()
        return win is not self and win.isVisible() and (not self.isVisible() or self.visibleRegion().isEmpty())

    def _follow_trace(self, trace) -> None:
        if self._hidden_in_shown_window():
            self._stale = True
            return
        self.on_trace_changed(trace)

    def _follow_selection(self, selection) -> None:
        if self._hidden_in_shown_window():
            self._stale = True
            return
        self.on_selection_changed(selection)

    def event(self, event) -> bool:
        # Shown again (its tab picked, its dock reopened): render the latest, after this paint.
        if self._stale and event.type() in (QEvent.Show, QEvent.Paint):
            self._stale = False
            QTimer.singleShot(0, self._catch_up)
        return super().event(event)

    def _catch_up(self) -> None:
        if self._hidden_in_shown_window():
            self._stale = True
            return
        self.on_trace_changed(self.session.trace)
        self.on_selection_changed(self.session.selection)

    def on_model_changed(self, card) -> None:
        pass

    def on_trace_changed(self, trace) -> None:
        pass

    def on_selection_changed(self, selection) -> None:
        pass

    def selftest_ready(self) -> bool:
        """True once the panel shows real content for the current model (selftest waits)."""
        return True

    def apply_lesson(self, settings: dict) -> None:
        """Take a lesson's settings for this panel (a dict from the lesson file's
        ``panels.<panel_id>``; the keys each panel reads are in resources/lessons/README.md).
        Ignore keys you do not know; raise for values you cannot use."""

    def lesson_state(self) -> dict:
        """This panel's settings worth keeping with an exported session (JSON-able, in
        the spirit of ``apply_lesson``'s keys); ``{}`` leaves the panel out."""
        return {}

    def export_data(self) -> dict:
        """Results to keep with an exported session, by a name unique to the lab (a
        top-level key of session.json, e.g. ``{"decode_tree": {...}}``); ``{}`` for none."""
        return {}

    def export_views(self, folder: Path) -> list[Path]:
        """Save pictures of what the panel shows into ``folder`` (Export session) and
        return the files, the main one first; raise OSError when one cannot be written."""
        path = Path(folder) / f"{self.panel_id}.png"
        if not self.export_png(path):
            raise OSError(f"could not save {path.name}")
        return [path]

    def export_png(self, path: str | Path) -> bool:
        """Save what the panel shows now as a PNG (whole or not at all)."""
        from lab.ui.widgets.view_export import save_view

        return save_view(self, path, "png") is not None

    def restore_defaults(self) -> None:
        """Back to a fresh start (Lessons ▸ Reset everything): forget what the user picked
        in this panel that the session does not hold. The loaded model stays."""

    def take_focus(self) -> None:
        """Put the keyboard focus on the panel's main input (Run ▸ Focus prompt)."""
        self.setFocus()

    def submit(self) -> None:
        """Act on what the user entered, like pressing the panel's main button
        (Run ▸ Analyse prompt asks the prompt panel)."""


def panel_classes() -> list[type[Panel]]:
    """Every Panel subclass in lab.ui.panels, in ``order``."""
    import lab.ui.panels as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
    seen: dict[str, type[Panel]] = {}

    def walk(cls):
        for sub in cls.__subclasses__():
            if sub.panel_id and sub.__module__.startswith("lab.ui.panels."):
                seen[sub.panel_id] = sub
            walk(sub)

    walk(Panel)
    return sorted(seen.values(), key=lambda c: (c.order, c.panel_id))
