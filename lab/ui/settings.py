"""Where the lab keeps its settings: the user's config folder (QSettings), never beside
the program, so a bundle on a read-only disk works. ``TVLAB_SETTINGS_DIR`` moves them
(tests use a temporary folder).

What a start reads from disk is checked before it is used (``start_state``): a value the
lab cannot use is replaced by its default and named in one notice, so a bad settings file
never stops the lab or fails silently.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

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


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|split|auto)$")


@dataclass
class StartState:
    """What the lab starts with, after the checks; ``resets`` says what was replaced."""
    model: str
    device: str
    dtype: str
    theme: str
    resets: list[str] = field(default_factory=list)


def _text(s: QSettings, key: str) -> Optional[str]:
    value = s.value(key)
    return value if isinstance(value, str) and value.strip() else None


def _model_exists(ref: str) -> bool:
    """Whether a saved model reference still names something on disk (no torch, no cache scan)."""
    from lab.core import models

    if ref.startswith("zoo:"):
        return ref[4:] in models.zoo_models()
    path = Path(ref).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    cache = models.hub_cache_dir()
    return bool(cache) and "/" in ref and (Path(cache) / ("models--" + ref.replace("/", "--"))).is_dir()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tvlab-probe-"):
            return True
    except OSError:
        return False


def start_state(model: Optional[str] = None, device: Optional[str] = None,
                dtype: Optional[str] = None) -> StartState:
    """The model, device, dtype and theme to start with: the command line's, else the saved
    ones where they can be used, else the defaults; each saved value replaced is named in
    ``resets``, and the settings file is corrected. Device availability is the worker's
    question (``unavailable_device``)."""
    from lab.core import models
    from lab.ui import theme as lab_theme

    s = settings()
    resets: list[str] = []
    if s.status() != QSettings.NoError:
        resets.append(f"the settings file {s.fileName()} could not be read")
    saved_model = _text(s, "last_model")
    ref = model or saved_model or models.DEFAULT_MODEL
    if not model and saved_model and not _model_exists(saved_model):
        resets.append(f"the last model {saved_model} is gone: {models.DEFAULT_MODEL} instead")
        ref = models.DEFAULT_MODEL
    saved_device = _text(s, "device")
    dev = device or saved_device or "cpu"
    if not device and saved_device and not _DEVICE.match(saved_device.strip().lower()):
        resets.append(f"device {saved_device!r} is not a device: the CPU instead")
        dev = "cpu"
    saved_dtype = _text(s, "dtype")
    dt = dtype or saved_dtype or "fp32"
    if not dtype and saved_dtype and saved_dtype not in models.DTYPES:
        resets.append(f"dtype {saved_dtype!r} is not one of {', '.join(models.DTYPES)}: fp32 instead")
        dt = "fp32"
    theme = _text(s, "theme") or "system"
    if theme not in lab_theme.THEMES:
        resets.append(f"theme {theme!r} is not one of {', '.join(lab_theme.THEMES)}: system instead")
        theme = "system"
    folder = user_lessons_dir()
    if folder.exists():
        try:
            os.listdir(folder)
        except OSError as err:
            resets.append(f"the lessons folder {folder} cannot be read ({err.strerror or err}): "
                          "only the lab's own lessons are listed")
    if resets:
        s.setValue("last_model", ref)
        s.setValue("device", dev)
        s.setValue("dtype", dt)
        s.setValue("theme", theme)
    s.sync()
    if s.status() == QSettings.AccessError or not _writable(Path(s.fileName()).parent):
        resets.append(f"the settings folder {Path(s.fileName()).parent} is not writable: "
                      "changes last until the lab closes")
    return StartState(ref, dev, dt, theme, resets)


def unavailable_device(device: str, available: list[str]) -> Optional[str]:
    """The reset to name when a saved device is not on this machine (None: it is, or it
    is chosen at load: cpu, auto, split)."""
    dev = device.strip().lower()
    dev = "cuda:0" if dev == "cuda" else dev
    if dev in ("cpu", "auto", "split") or dev in available:
        return None
    return f"device {device} is not on this machine: the CPU instead"


def start_notice(resets: list[str]) -> str:
    """The one notice that says what a start replaced."""
    return "Started with defaults for what could not be used: " + "; ".join(resets) + "."
