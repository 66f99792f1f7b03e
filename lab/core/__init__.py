"""Model work without Qt: loading, devices, traces, tokens, embeddings, sampling, precision, scaling.

Topics with several parts are packages (``trace``, ``precision``, ``scaling``, ``embeddings``)
whose ``__init__`` re-exports their public names. Numbers people type or read go through
``units``; files written whole go through ``atomic``.

Nothing in this package may import Qt or a Qt plotting library (tests/core/test_no_qt.py).
"""
