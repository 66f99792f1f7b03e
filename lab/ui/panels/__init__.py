"""Dock panels: one module per panel; see base.py for how a panel declares itself."""
