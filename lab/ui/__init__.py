"""Qt side of the lab. Never does model work on the GUI thread: see worker.py.

PySide6 is kept below 6.12 (pyproject.toml): on Python 3.11, 6.12.0 hands back None,
True and False from wrapped calls and bool signals without a new reference, and the
process dies after enough GUI updates ("Fatal Python error: none_dealloc").
"""
