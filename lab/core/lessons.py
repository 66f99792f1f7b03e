"""Lessons: data files that set the lab up for one topic of the course (no Qt here).

A lesson is a JSON (or TOML) file in ``resources/lessons/`` or a workshop leader's own
folder; resources/lessons/README.md documents the format. ``load_lessons()`` reads every
file and never raises: a file that cannot be used comes back as a Lesson with
``problem`` set to one sentence, so the Lessons menu can show it disabled with the reason.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lab.core.resources import resource

FORMAT_VERSION = 1
SUFFIXES = (".json", ".toml")
STACKS = ("self", "encoder", "decoder", "cross")

# field -> (types allowed, what to say when it is wrong)
_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "format": ((int,), "a whole number (1)"),
    "id": ((str,), "text"),
    "title": ((str,), "text"),
    "order": ((int, float), "a number"),
    "topic": ((str,), "text"),
    "model": ((str, type(None)), "a model reference such as \"zoo:bard-gpt\""),
    "prompt": ((str,), "text"),
    "target": ((str,), "text"),
    "explanation": ((str, list), "text (or a list of paragraphs)"),
    "try": ((list,), "a list of steps (text)"),
    "raise": ((str,), "a panel id such as \"attention\""),
    "selection": ((dict,), "a table with stack, layer, head and token"),
    "panels": ((dict,), "a table of panel id -> settings"),
}
REQUIRED = ("title", "explanation", "try")


@dataclass
class Lesson:
    id: str
    path: Path
    title: str = ""
    order: float = 100.0
    topic: str = ""
    model: Optional[str] = None           # None: keep whatever model is loaded
    prompt: Optional[str] = None
    target: Optional[str] = None
    explanation: str = ""
    steps: list[str] = field(default_factory=list)
    raise_panel: Optional[str] = None
    selection: dict[str, Any] = field(default_factory=dict)   # stack, layer, head, token
    panels: dict[str, dict] = field(default_factory=dict)     # panel id -> settings
    problem: Optional[str] = None          # why it cannot be used (the menu disables it)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "path": str(self.path), "order": self.order,
                "topic": self.topic, "model": self.model, "prompt": self.prompt, "target": self.target,
                "explanation": self.explanation, "try": list(self.steps), "raise": self.raise_panel,
                "selection": dict(self.selection), "panels": dict(self.panels), "problem": self.problem}


class LessonFormatError(ValueError):
    """A lesson file that cannot be read or has malformed fields (one sentence)."""


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LessonFormatError(f"cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:   # Python 3.10
            raise LessonFormatError("is TOML, which needs Python 3.11 or later; write it as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise LessonFormatError(f"is not valid TOML ({err})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise LessonFormatError(f"is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise LessonFormatError("must hold one table/object of fields")
    return data


def _text(value) -> str:
    if isinstance(value, list):
        return "\n\n".join(str(v).strip() for v in value)
    return str(value).strip()


def parse(path: str | Path) -> Lesson:
    """Read and validate one lesson file; raise LessonFormatError with the reason."""
    path = Path(path)
    data = _read(path)
    for key, value in data.items():
        if key in _FIELDS:
            types, want = _FIELDS[key]
            if not isinstance(value, types) or isinstance(value, bool):
                raise LessonFormatError(f"field {key!r} must be {want}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise LessonFormatError(f"unknown field {unknown[0]!r} (known: {', '.join(_FIELDS)})")
    missing = [k for k in REQUIRED if k not in data or data[k] in ("", [], None)]
    if missing:
        raise LessonFormatError(f"field {missing[0]!r} is missing")
    if data.get("format", FORMAT_VERSION) > FORMAT_VERSION:
        raise LessonFormatError(f"needs a newer lab (format {data['format']}; this lab reads {FORMAT_VERSION})")
    if isinstance(data["explanation"], list) and not all(isinstance(p, str) for p in data["explanation"]):
        raise LessonFormatError("field 'explanation' must be text or a list of text paragraphs")
    steps = data["try"]
    if not all(isinstance(s, str) and s.strip() for s in steps):
        raise LessonFormatError("field 'try' must be a list of non-empty steps (text)")
    sel = data.get("selection", {})
    for key, value in sel.items():
        if key == "stack":
            if value not in STACKS:
                raise LessonFormatError(f"selection 'stack' must be one of {', '.join(STACKS)}")
        elif key in ("layer", "head"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise LessonFormatError(f"selection {key!r} must be a whole number from 0")
        elif key == "token":
            if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
                raise LessonFormatError("selection 'token' must be a position (0, 1, …) or a word of the prompt")
        else:
            raise LessonFormatError(f"unknown selection field {key!r} (known: stack, layer, head, token)")
    panels = data.get("panels", {})
    for pid, settings in panels.items():
        if not isinstance(settings, dict):
            raise LessonFormatError(f"panels.{pid} must be a table of settings")
    model = data.get("model")
    if isinstance(model, str) and not model.strip():
        raise LessonFormatError("field 'model' is empty (leave it out to keep the loaded model)")
    prompt = data.get("prompt")
    if prompt is not None and not prompt.strip():
        raise LessonFormatError("field 'prompt' is empty (leave it out to keep the current prompt)")
    return Lesson(
        id=data.get("id") or path.stem, path=path, title=data["title"].strip(),
        order=float(data.get("order", 100)), topic=data.get("topic", "").strip(),
        model=model.strip() if model else None, prompt=prompt, target=data.get("target"),
        explanation=_text(data["explanation"]), steps=[s.strip() for s in steps],
        raise_panel=data.get("raise"), selection=dict(sel), panels={k: dict(v) for k, v in panels.items()})


def model_problem(ref: Optional[str]) -> Optional[str]:
    """Why a lesson's model cannot be loaded here, or None (cheap: no weights are read)."""
    if not ref:
        return None
    from lab.core import models
    from lab.core.errors import LabError

    try:
        folder, _source = models.resolve(ref)
    except LabError:
        if ref.startswith("zoo:"):
            return f"needs the bundled model {ref}, which is not installed"
        return f"needs the model {ref}, which is not on this machine"
    if not (Path(folder) / "config.json").is_file():
        return f"needs the model {ref}, but {folder} has no config.json"
    return None


def lesson_dirs(extra: Optional[list[str | Path]] = None) -> list[Path]:
    """Built-in lessons, then ``TVLAB_LESSONS`` (folders, os.pathsep-separated), then extra."""
    dirs = [resource("lessons")]
    for d in (os.environ.get("TVLAB_LESSONS") or "").split(os.pathsep):
        if d.strip():
            dirs.append(Path(d).expanduser())
    dirs += [Path(d) for d in (extra or [])]
    return dirs


def load_lessons(extra_dirs: Optional[list[str | Path]] = None, check_models: bool = True) -> list[Lesson]:
    """Every lesson file, sorted by order then title; bad files come back with ``problem``."""
    out: list[Lesson] = []
    seen: set[Path] = set()
    for d in lesson_dirs(extra_dirs):
        try:
            if not d.is_dir():
                continue
            paths = sorted(d.iterdir())
        except OSError as err:   # an unreadable folder: say so in the menu, list the others
            out.append(Lesson(id=f"unreadable:{d}", path=d, title=f"{d.name} (cannot be read)", order=1e9,
                              problem=f"The lessons folder {d} cannot be read: {err.strerror or err}."))
            continue
        for path in paths:
            if path.suffix not in SUFFIXES or not path.is_file() or path.name.startswith("."):
                continue
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                lesson = parse(path)
            except LessonFormatError as err:
                out.append(Lesson(id=path.stem, path=path, title=path.stem.replace("_", " ").replace("-", " "),
                                  order=1e9, problem=f"{path.name} {err}."))
                continue
            if check_models:
                why = model_problem(lesson.model)
                if why:
                    lesson.problem = f"This lesson {why}."
            out.append(lesson)
    out.sort(key=lambda l: (l.order, l.title.lower()))
    return out


def resolve_token(tokens: list[str], want: int | str) -> Optional[int]:
    """The position a lesson's ``selection.token`` names: an index, or the first token that
    is the word (ignoring case, spaces and the tokenizer's space markers), else the first
    token that starts the word. Negative indices count from the end."""
    if isinstance(want, int):
        n = len(tokens)
        i = want + n if want < 0 else want
        return i if 0 <= i < n else None

    def clean(t: str) -> str:
        return t.replace("Ġ", "").replace("▁", "").replace("##", "").strip().lower()

    word = want.strip().lower()
    pieces = [clean(t) for t in tokens]
    for i, p in enumerate(pieces):
        if p == word:
            return i
    for i, p in enumerate(pieces):
        if p and word.startswith(p) and len(p) >= 2:
            return i
    return None


#: The kinds of control a step can name, as "the <Label> <kind>": a tab, a button, a box
#: (check box, spin box, text box) or a list (a drop-down).
CONTROL_KINDS = ("tab", "button", "box", "list")
_CONTROL = re.compile(r"\bthe ([A-Z][\w&()'.+×-]*(?: (?!the\b)[\w&()'.+×-]+)*?) (" + "|".join(CONTROL_KINDS) + r")\b")


def control_name(kind: str, label: str) -> str:
    """The object name of the control a step calls "the <label> <kind>": "the Run button" ->
    "button-run", "the Frontier & known models tab" -> "tab-frontier-known-models"."""
    return f"{kind}-" + re.sub(r"[^a-z0-9]+", "-", label.replace("&&", "&").lower()).strip("-")


def named_controls(step: str) -> list[tuple[str, str]]:
    """The controls a step names, as (kind, label) pairs: "Open the Context tab and press the
    Compare layers button" -> [("tab", "Context"), ("button", "Compare layers")]."""
    return [(m.group(2), m.group(1)) for m in _CONTROL.finditer(step)]
