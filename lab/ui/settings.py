"""Where the lab keeps its settings: the user's config folder (QSettings), never beside
the program, so a bundle on a read-only disk works. ``TVLAB_SETTINGS_DIR`` moves them
(tests use a temporary folder)."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

MAX_RECENT_PROMPTS = 15


def settings() -> QSettings:
    folder = os.environ.get("TVLAB_SETTINGS_DIR")
    if folder:
        return QSettings(os.path.join(folder, "tvlab.ini"), QSettings.IniFormat)
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "TransformerVisualLab", "tvlab")


def recent_prompts() -> list[str]:
    value = settings().value("recent_prompts", [])
    if isinstance(value, str):
        value = [value]
    return [v for v in (value or []) if isinstance(v, str)]


def remember_prompt(text: str) -> None:
    text = text.strip()
    if not text:
        return
    items = [text] + [p for p in recent_prompts() if p != text]
    settings().setValue("recent_prompts", items[:MAX_RECENT_PROMPTS])


def user_lessons_dir() -> Path:
    """A workshop leader's own lessons: beside the settings, in the user's config folder."""
    return Path(settings().fileName()).parent / "lessons"


def load_lessons() -> list:
    """Every lesson: the lab's own, ``TVLAB_LESSONS``, then the user's lessons folder."""
    from lab.core import lessons as core_lessons

    return core_lessons.load_lessons([user_lessons_dir()])
