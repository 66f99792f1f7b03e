"""Qt side of the lab. Never does model work on the GUI thread: see worker.py."""
import sys

if sys.version_info < (3, 12):
    # PySide6/shiboken6 6.12 hands back None (and True/False) from wrapped C++ calls without
    # a new reference: harmless where they are immortal (Python 3.12+), but on 3.11 every
    # void Qt call (setText, setVisible, addItem, ...) drops None's count by one, and after
    # some tens of thousands of GUI updates the process dies with "Fatal Python error:
    # none_dealloc". Give them the practically endless count that 3.12 gives them.
    import ctypes

    for _obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(_obj)).value += 1 << 40
    del _obj
