"""Where the lab's data files are: resources (icons, lessons, tables) and the zoo.

An installed wheel or a PyInstaller bundle carries them inside the package
(``lab/resources``, ``lab/zoo``: packaging/payload.py puts them there); a source checkout
has them at the repository's root (``resources/``, ``models/``). Look here rather than
building paths from ``__file__`` so every way of running the lab finds the same files.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent


def resources_dir() -> Path:
    """The resources folder: the package's own copy first, then the checkout's."""
    for d in (PACKAGE_DIR / "resources", REPO_ROOT / "resources"):
        if d.is_dir():
            return d
    return REPO_ROOT / "resources"


def resource(*parts: str) -> Path:
    """A file under resources/, e.g. ``resource("lessons", "tokens.json")``."""
    return resources_dir().joinpath(*parts)
