"""Load torch's shared libraries without holding the GIL.

``import torch`` opens libtorch_cpu (and libtorch_cuda on a CUDA build) with
``ctypes.CDLL``, which keeps the GIL for the whole ``dlopen``: a quarter of a second on a
fast machine (much longer for a CUDA build), in which no other Python thread runs. In the
lab that thread is the GUI: the window froze while the worker imported torch. Calling
``dlopen`` through ctypes' foreign-function interface releases the GIL, and once the
libraries are in the process, torch's own ``dlopen`` of the same files costs nothing.

Linux only (elsewhere, and for any file that will not open, torch's import does the work
as before). Only libraries without Python in them are opened here; torch's Python
extension is imported the usual way.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import threading

# In the order torch needs them; each pulls in its own dependencies through its RPATH.
_LIBRARIES = ("libtorch_global_deps.so", "libc10.so", "libtorch_cpu.so", "libc10_cuda.so",
              "libtorch_cuda.so", "libtorch.so")
_lock = threading.Lock()
_done: list[str] = []


def torch_library_folder() -> str | None:
    """torch/lib of the installed torch, found without importing it (None if absent)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    folder = os.path.join(os.path.dirname(spec.origin), "lib")
    return folder if os.path.isdir(folder) else None


def preload_torch() -> list[str]:
    """Open torch's native libraries with the GIL released; returns the ones opened.

    Safe to call from any thread, any number of times; a no-op once torch is imported."""
    with _lock:
        if _done or not sys.platform.startswith("linux") or "torch" in sys.modules:
            return list(_done)
        folder = torch_library_folder()
        if folder is None:
            return []
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen                    # a CDLL call: the GIL is released inside
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        for name in _LIBRARIES:
            path = os.path.join(folder, name)
            if os.path.exists(path) and dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_GLOBAL):
                _done.append(name)
        return list(_done)
