"""Model work without Qt: loading, traces, tokens, sampling, precision, scaling.

Nothing in this package may import PySide6 or pyqtgraph (tests/core/test_no_qt.py).
"""
