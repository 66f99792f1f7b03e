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


MAX_MODEL_FOLDERS = 20


def _strings(key: str) -> list[str]:
    value = settings().value(key, [])
    if isinstance(value, str):
        value = [value]
    return [v for v in (value or []) if isinstance(v, str)]


def recent_prompts() -> list[str]:
    return _strings("recent_prompts")


def model_folders() -> list[str]:
    """Model folders that loaded once, newest first (the Model panel's "Folders")."""
    return _strings("model_folders")


def remember_model_folder(path: str) -> None:
    items = [path] + [p for p in model_folders() if p != path]
    settings().setValue("model_folders", items[:MAX_MODEL_FOLDERS])
    settings().setValue("last_folder", str(Path(path).parent))


def forget_model_folder(path: str) -> None:
    settings().setValue("model_folders", [p for p in model_folders() if p != path])


def last_folder() -> str:
    """Where a folder dialog starts: the parent of the last folder opened, else home."""
    value = settings().value("last_folder", "")
    return value if isinstance(value, str) and value and os.path.isdir(value) else str(Path.home())


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
