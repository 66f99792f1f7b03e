"""Before Qt starts on Linux: are the system libraries of Qt's xcb platform plugin there?

Qt's own message names one library at best (and sometimes another one than is missing);
this says, in one line, which packages to install on Debian/Ubuntu and on Fedora. It imports
no Qt: it runs before the QApplication exists.
"""
from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from typing import Callable, Optional

#: library (as ctypes.util.find_library names it) -> (Debian/Ubuntu package, Fedora package)
XCB_LIBRARIES = {
    "xcb-cursor": ("libxcb-cursor0", "xcb-util-cursor"),
    "xcb-icccm": ("libxcb-icccm4", "xcb-util-wm"),
    "xcb-image": ("libxcb-image0", "xcb-util-image"),
    "xcb-keysyms": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "xcb-randr": ("libxcb-randr0", "libxcb"),
    "xcb-render-util": ("libxcb-render-util0", "xcb-util-renderutil"),
    "xcb-shape": ("libxcb-shape0", "libxcb"),
    "xcb-xfixes": ("libxcb-xfixes0", "libxcb"),
    "xcb-xkb": ("libxcb-xkb1", "libxcb"),
    "xkbcommon-x11": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
}


def wants_xcb(env=None, platform: Optional[str] = None) -> bool:
    """Qt will try the xcb plugin: Linux, a display, and no other platform asked for."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    chosen = env.get("QT_QPA_PLATFORM", "")
    return platform.startswith("linux") and bool(env.get("DISPLAY")) and (not chosen or chosen.startswith("xcb"))


def missing_libraries(find: Callable[[str], Optional[str]] = ctypes.util.find_library) -> list[str]:
    return [lib for lib in XCB_LIBRARIES if not find(lib)]


def _qt_starts() -> bool:
    """The last word: can a QApplication start on xcb in a child process? (a bundle may
    carry libraries the system search does not see)"""
    code = "from PySide6.QtWidgets import QApplication; QApplication(['tvlab'])"
    try:
        done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QT_QPA_PLATFORM": "xcb"},
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return True                   # no verdict: let Qt speak for itself
    return done.returncode == 0


def install_line(missing: list[str]) -> str:
    """One line naming the packages to install."""
    deb = " ".join(dict.fromkeys(XCB_LIBRARIES[lib][0] for lib in missing))
    rpm = " ".join(dict.fromkeys(XCB_LIBRARIES[lib][1] for lib in missing))
    return (f"Qt cannot open a window: its xcb platform plugin needs system libraries that are missing "
            f"({', '.join('lib' + lib for lib in missing)}). Install them: Debian/Ubuntu: sudo apt install "
            f"{deb}; Fedora: sudo dnf install {rpm}.")


def check(env=None) -> Optional[str]:
    """None when Qt can start (or will not use xcb); else the one line to print."""
    if not wants_xcb(env):
        return None
    missing = missing_libraries()
    if not missing or _qt_starts():
        return None
    return install_line(missing)
