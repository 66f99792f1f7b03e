"""Workshop mode: the Lessons menu, running a lesson, presenter options, session export.

``install(window)`` is the one hook the main window calls: it adds the Lessons menu
(every lesson file; unusable ones disabled with the reason), the presenter options
(larger fonts, high-contrast theme, reset everything) and "Export session…".

A lesson (lab.core.lessons.Lesson) is applied by ``LessonRunner``: load its model if
another one is loaded, set prompt and target, hand each panel its settings through
``panel.apply_lesson(settings: dict)``, then, once the trace is in, broadcast the
selection and raise the lesson's panel.
"""
from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QFont, QIcon
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QMessageBox, QTreeWidget

import lab
from lab.core import atomic
from lab.core import lessons as core_lessons
from lab.core.errors import InputError
from lab.core.resources import resource
from lab.ui import settings as lab_settings

LARGE_FONT_SCALE = 1.5
HIGH_CONTRAST = "high-contrast"


def user_lessons_dir() -> Path:
    """A workshop leader's own lessons: beside the settings, in the user's config folder."""
    return Path(lab_settings.settings().fileName()).parent / "lessons"


def load_lessons() -> list[core_lessons.Lesson]:
    return core_lessons.load_lessons([user_lessons_dir()])


# --- running a lesson ------------------------------------------------------------------------

def _same_model(card, ref: str) -> bool:
    if card is None:
        return False
    if card.ref == ref:
        return True
    try:
        from lab.core import models

        folder, _ = models.resolve(ref)
        return Path(card.path).resolve() == Path(folder).resolve()
    except Exception:
        return False


class LessonRunner(QObject):
    """Sets the lab up for one lesson, step by step as the model and the trace arrive."""

    status = Signal(str)              # what is happening, for the lessons panel
    started = Signal(object)          # Lesson
    finished = Signal(object, list)   # Lesson, notes (things that could not be applied)

    def __init__(self, session, window=None):
        super().__init__(window or session)
        self.session = session
        self.window = window
        self.lesson: Optional[core_lessons.Lesson] = None
        self.notes: list[str] = []
        self._stage = "idle"          # idle | model | trace
        session.model_changed.connect(self._model_changed)
        session.trace_changed.connect(self._trace_changed)
        session.error.connect(self._error)

    @property
    def busy(self) -> bool:
        return self._stage != "idle"

    def start(self, lesson: core_lessons.Lesson) -> bool:
        if not lesson.ok:
            self.status.emit(lesson.problem or "This lesson cannot be used.")
            return False
        self.lesson, self.notes = lesson, []
        self.started.emit(lesson)
        self._raise(lesson.raise_panel)
        if lesson.model and not _same_model(self.session.card, lesson.model):
            self._stage = "model"
            self.status.emit(f"Loading {lesson.model}…")
            if self.window is not None and hasattr(self.window, "load_model"):
                self.window.load_model(lesson.model)
            else:
                self.session.load_model(lesson.model)
            return True
        self._model_ready()
        return True

    def _model_changed(self, card) -> None:
        if self._stage == "model" and card is not None and _same_model(card, self.lesson.model):
            self._model_ready()

    def _error(self, message: str) -> None:
        if self._stage == "model":
            self._finish([f"Could not load {self.lesson.model}: {message}"])
        elif self._stage == "trace":
            self._finish([f"Could not analyse the prompt: {message}"])

    def _model_ready(self) -> None:
        lesson = self.lesson
        if self.session.card is None and lesson.model is None and lesson.prompt:
            self.notes.append("No model is loaded: load one to see this lesson's prompt analysed.")
        if lesson.prompt is not None:
            target = lesson.target or ""
            prompt_panel = self._panels().get("prompt")
            if prompt_panel is not None and hasattr(prompt_panel, "target"):
                prompt_panel.target.setText(target)
            self.session.set_target(target)
            needs_trace = self.session.card is not None
            self._stage = "trace" if needs_trace else "idle"
            if needs_trace:
                self.status.emit("Analysing the prompt…")
            self.session.set_prompt(lesson.prompt, immediate=True)
            if needs_trace and self.session.trace is not None and self.session.prompt == lesson.prompt \
                    and not self.session.busy:
                # Same prompt as before: set_prompt did not start a new capture.
                self.session.capture()
            if not needs_trace:
                self._finish()
        elif lesson.selection and self.session.trace is not None:
            self._apply_selection(self.session.trace)
            self._finish()
        else:
            self._finish()

    def _trace_changed(self, trace) -> None:
        if self._stage != "trace" or trace is None or self.session.prompt != self.lesson.prompt:
            return
        # After the session's own selection clamp for the new trace has gone out.
        QTimer.singleShot(0, lambda tr=trace: self._selection_then_finish(tr))

    def _selection_then_finish(self, trace) -> None:
        if self._stage != "trace":
            return
        self._apply_selection(trace)
        self._finish()

    def _apply_selection(self, trace) -> None:
        sel = dict(self.lesson.selection)
        if not sel:
            return
        changes = {}
        stack = sel.get("stack", self.session.selection.stack)
        if stack not in trace.attentions:
            self.notes.append(f"This model has no {stack!r} attention; showing {trace.stacks[0]!r}.")
            stack = trace.stacks[0]
        changes["stack"] = stack
        if "layer" in sel:
            n = trace.layers(stack)
            if sel["layer"] >= n:
                self.notes.append(f"Layer {sel['layer']} does not exist (the model has {n}); showing the last.")
            changes["layer"] = min(sel["layer"], n - 1)
        if "head" in sel:
            n = trace.heads(stack)
            if sel["head"] >= n:
                self.notes.append(f"Head {sel['head']} does not exist (the model has {n}); showing the last.")
            changes["head"] = min(sel["head"], n - 1)
        if "token" in sel:
            tokens = list(trace.query_tokens(stack))
            i = core_lessons.resolve_token(tokens, sel["token"])
            if i is None:
                self.notes.append(f"The prompt has no token {sel['token']!r}; no token is selected.")
            else:
                changes["token"] = i
        self.session.select(**changes)

    def _panels(self) -> dict:
        return getattr(self.window, "panels", {}) if self.window is not None else {}

    def _apply_panels(self, lesson) -> None:
        panels = self._panels()
        if self.window is None:
            return
        for pid, settings in lesson.panels.items():
            panel = panels.get(pid)
            if panel is None:
                self.notes.append(f"This lab has no {pid!r} panel, so its settings were skipped.")
                continue
            # apply_lesson(settings) is the hook (base.Panel has a no-op); a panel whose
            # apply_lesson means something else offers apply_settings(settings) instead.
            apply = getattr(panel, "apply_settings", None) or getattr(panel, "apply_lesson", None)
            if apply is None:
                continue
            try:
                apply(dict(settings))
            except Exception as err:   # a panel that does not take these settings: say so, go on
                self.notes.append(f"The {getattr(panel, 'title', pid)} panel could not apply {settings}: {err}")

    def _raise(self, pid: Optional[str]) -> None:
        docks = getattr(self.window, "docks", {}) if self.window is not None else {}
        for p in ("lessons", pid):
            dock = docks.get(p) if p else None
            if dock is not None:
                dock.show()
                dock.raise_()
        if pid and docks and pid not in docks:
            self.notes.append(f"This lab has no {pid!r} panel to show.")

    def _finish(self, extra: Optional[list[str]] = None) -> None:
        self._stage = "idle"
        if not extra and self.lesson is not None:
            # Last, so that what a panel does on a new model or trace (its defaults) is
            # already done: the worker answers in order.
            self._apply_panels(self.lesson)
        self.notes += extra or []
        if self.lesson is not None:
            self._raise(self.lesson.raise_panel if not extra else None)
        self.status.emit("Ready: follow the steps below." if not self.notes else " ".join(self.notes))
        self.finished.emit(self.lesson, list(self.notes))


# --- presenter options -----------------------------------------------------------------------

def set_large_fonts(on: bool, app: Optional[QApplication] = None) -> None:
    """Scale the application font by LARGE_FONT_SCALE (a projector at the back of a room)."""
    app = app or QApplication.instance()
    base = app.property("tvlab_base_font")
    if not isinstance(base, QFont):
        base = QFont(app.font())
        app.setProperty("tvlab_base_font", base)
    font = QFont(base)
    if on:
        size = base.pointSizeF() if base.pointSizeF() > 0 else 10.0
        font.setPointSizeF(size * LARGE_FONT_SCALE)
    app.setFont(font)
    app.setProperty("tvlab_large_fonts", bool(on))
    lab_settings.settings().setValue("presenter/large_fonts", bool(on))


def large_fonts_on() -> bool:
    return str(lab_settings.settings().value("presenter/large_fonts", False)).lower() in ("true", "1")


def reset_everything(window) -> None:
    """Back to a fresh start: settings cleared, default layout and theme, normal fonts,
    the lesson and selection cleared, the prompt emptied (the loaded model stays)."""
    s = lab_settings.settings()
    s.clear()
    s.sync()
    set_large_fonts(False)
    if hasattr(window, "set_theme"):
        window.set_theme("system")
    window.reset_layout()
    from lab.ui.session import Selection

    prompt_panel = window.panels.get("prompt")
    if prompt_panel is not None and hasattr(prompt_panel, "target"):
        prompt_panel.target.setText("")
        if hasattr(prompt_panel, "_fill_recent"):
            prompt_panel._fill_recent()
    window.session.set_target("")
    window.session.set_prompt("")
    window.session.selection = Selection()
    window.session.selection_changed.emit(window.session.selection)
    lessons_panel = window.panels.get("lessons")
    if lessons_panel is not None and hasattr(lessons_panel, "reset"):
        lessons_panel.reset()
    for act in getattr(window, "_presenter_actions", {}).values():
        act.blockSignals(True)
        act.setChecked(False)
        act.blockSignals(False)


# --- export ----------------------------------------------------------------------------------

def _wait(ms: int) -> None:
    app = QApplication.instance()
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _state_of(panel) -> Optional[dict]:
    fn = getattr(panel, "export_state", None)
    if not callable(fn):
        return None
    try:
        state = fn()
        json.dumps(state, default=str)
        return state
    except Exception as err:
        return {"error": f"could not export: {err}"}


def _decode_tree(window) -> Optional[object]:
    for panel in window.panels.values():
        for name in ("decode_tree", "export_tree"):
            fn = getattr(panel, name, None)
            if callable(fn):
                try:
                    return fn()
                except Exception as err:
                    return {"error": f"could not export the decode tree: {err}"}
    tree = getattr(window.panels.get("decoding"), "tree", None)
    if isinstance(tree, QTreeWidget) and tree.topLevelItemCount():
        return _tree_widget_dict(tree)
    return getattr(window.session, "decode_tree", None)


def _tree_widget_dict(tree) -> dict:
    """The decode tree as the panel shows it: each row's columns, with its children."""
    head = tree.headerItem()
    names = [head.text(i) or f"column {i}" for i in range(tree.columnCount())]

    def node(item) -> dict:
        d = {"text": item.text(0)}
        d.update({names[i]: item.text(i) for i in range(1, len(names))})
        d["children"] = [node(item.child(i)) for i in range(item.childCount())]
        return d

    roots = [node(tree.topLevelItem(i)) for i in range(tree.topLevelItemCount())]
    return roots[0] if len(roots) == 1 else {"text": "(prompt)", "children": roots}


def export_session(window, parent: str | Path, lesson: Optional[core_lessons.Lesson] = None) -> Path:
    """Write prompt, settings, decode tree and a PNG of every panel to a new folder in
    ``parent`` with an index.html; returns the folder. The folder is built under a
    temporary name and renamed at the end, so a failure leaves nothing behind."""
    parent = Path(parent).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    final = parent / f"tvlab-session-{stamp}"
    n = 2
    while final.exists():
        final = parent / f"tvlab-session-{stamp}-{n}"
        n += 1
    try:
        tmp = atomic.temp_folder(final)
    except OSError as err:
        raise InputError(f"Cannot export to {parent}: {err.strerror or err}.") from None
    try:
        images = _export_images(window, tmp)
        data = session_data(window, lesson)
        tree = _decode_tree(window)
        if tree is not None:
            data["decode_tree"] = tree
        data["images"] = images
        (tmp / "session.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str),
                                          encoding="utf-8")
        (tmp / "index.html").write_text(session_html(data), encoding="utf-8")
        atomic.publish_folder(tmp, final)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, InputError):
            raise
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"Could not export the session to {parent}: {reason}.") from None
    return final


def _export_images(window, folder: Path) -> dict[str, str]:
    """{panel title: file name}; each dock is brought to the front for its picture."""
    images: dict[str, str] = {}
    docks = getattr(window, "docks", {})
    front = [pid for pid, d in docks.items() if d.isVisible() and not d.visibleRegion().isEmpty()]
    for pid, panel in window.panels.items():
        dock = docks.get(pid)
        if dock is not None:
            if dock.isHidden():
                continue
            dock.raise_()
            _wait(60)
        name = f"{pid}.png"
        if panel.export_png(folder / name):
            images[getattr(panel, "title", pid) or pid] = name
        else:
            raise InputError(f"Could not save a picture of the {pid} panel.")
    for pid in front:
        docks[pid].raise_()
    _wait(60)
    if window.grab().save(str(folder / "window.png"), "PNG"):
        images = {"Whole window": "window.png", **images}
    return images


def _tokens(trace) -> Optional[list[str]]:
    """The prompt's tokens as the panels label them (the text they cover)."""
    if trace is None:
        return None
    try:
        from lab.core.trace import display_tokens

        return display_tokens(trace, trace.stacks[0])
    except Exception:
        return [str(t) for t in getattr(trace, "tokens", [])]


def session_data(window, lesson: Optional[core_lessons.Lesson] = None) -> dict:
    s = window.session
    card = s.card.to_dict() if s.card is not None else None
    panels = {}
    for pid, panel in window.panels.items():
        state = _state_of(panel)
        if state is not None:
            panels[pid] = state
    app = QApplication.instance()
    return {
        "lab": f"Transformer Visual Lab {lab.__version__}",
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
        "model": card,
        "prompt": s.prompt,
        "target": s.target,
        "selection": asdict(s.selection),
        "tokens": _tokens(s.trace),
        "lesson": lesson.to_dict() if lesson is not None else None,
        "presenter": {"theme": str(lab_settings.settings().value("theme", "system")),
                      "large_fonts": bool(app.property("tvlab_large_fonts")) if app else False},
        "panels": panels,
    }


def _tree_html(node, depth: int = 0) -> str:
    """A decode tree as nested lists: dicts with 'children' (and 'token'/'text'), else JSON."""
    if depth > 60:
        return ""
    if isinstance(node, dict) and "children" in node:
        label = node.get("token", node.get("text", node.get("label", "")))
        extra = {k: v for k, v in node.items() if k not in ("children", "token", "text", "label")}
        bits = f"<code>{html.escape(str(label))}</code>"
        if extra:
            bits += " <small>" + html.escape(", ".join(f"{k}={v}" for k, v in extra.items())) + "</small>"
        kids = "".join(f"<li>{_tree_html(c, depth + 1)}</li>" for c in node.get("children") or [])
        return bits + (f"<ul>{kids}</ul>" if kids else "")
    return "<pre>" + html.escape(json.dumps(node, indent=2, ensure_ascii=False, default=str)) + "</pre>"


def session_html(data: dict) -> str:
    e = html.escape
    card = data.get("model") or {}
    rows = [("Model", f"{card.get('name', '—')} ({card.get('ref', '')}) · {card.get('kind', '')} · "
                      f"{card.get('layers', '?')} layers · {card.get('heads', '?')} heads · "
                      f"{card.get('device', '')} {card.get('dtype', '')}" if card else "none loaded"),
            ("Prompt", data.get("prompt") or "—")]
    if data.get("target"):
        rows.append(("Target", data["target"]))
    sel = data.get("selection") or {}
    rows.append(("Selection", f"stack {sel.get('stack')}, layer {sel.get('layer')}, head {sel.get('head')}, "
                              f"token {sel.get('token')}"))
    if data.get("tokens"):
        rows.append(("Tokens", " | ".join(str(t) for t in data["tokens"])))
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    parts = [f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Transformer Visual Lab — session {e(data.get('exported', ''))}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
 th {{ text-align: left; padding-right: 1em; vertical-align: top; white-space: nowrap; }}
 td {{ white-space: pre-wrap; }}
 img {{ max-width: 100%; border: 1px solid #ccc; margin: .5em 0 1.5em; }}
 pre {{ background: #f4f4f4; padding: .6em; overflow-x: auto; }}
 .lesson {{ background: #eef3ff; padding: .6em 1em; border-radius: 6px; }}
</style></head><body>
<h1>Transformer Visual Lab session</h1>
<p>Saved {e(data.get('exported', ''))} by {e(data.get('lab', ''))}. Open this page in any browser; the
pictures and <a href="session.json">session.json</a> sit beside it.</p>
<table>{table}</table>"""]
    lesson = data.get("lesson")
    if lesson:
        steps = "".join(f"<li>{e(s)}</li>" for s in lesson.get("try") or [])
        paras = "".join(f"<p>{e(p)}</p>" for p in str(lesson.get("explanation", "")).split("\n\n"))
        parts.append(f"<div class='lesson'><h2>Lesson: {e(lesson.get('title', ''))}</h2>{paras}"
                     f"<h3>Try this</h3><ol>{steps}</ol></div>")
    if data.get("panels"):
        parts.append("<h2>Panel settings</h2>")
        for pid, state in data["panels"].items():
            parts.append(f"<h3>{e(pid)}</h3><pre>{e(json.dumps(state, indent=2, ensure_ascii=False, default=str))}</pre>")
    if data.get("decode_tree") is not None:
        parts.append("<h2>Decode tree</h2>" + _tree_html(data["decode_tree"]))
    parts.append("<h2>Views</h2>")
    for title, name in (data.get("images") or {}).items():
        parts.append(f"<h3>{e(title)}</h3><img src='{e(name)}' alt='{e(title)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --- the menu ----------------------------------------------------------------------------

def install(window) -> QMenu:
    """Add the Lessons menu (before Help), the presenter options and session export."""
    icon = resource("icons", "tvlab.png")
    if icon.is_file():
        window.setWindowIcon(QIcon(str(icon)))
    window.lesson_runner = LessonRunner(window.session, window)
    panel = window.panels.get("lessons")
    if panel is not None and hasattr(panel, "attach"):
        panel.attach(window.lesson_runner)
    mb = window.menuBar()
    menu = QMenu("&Lessons", window)
    menu.setObjectName("menu-lessons")
    menu.setToolTipsVisible(True)
    help_action = next((a for a in mb.actions() if a.text().replace("&", "") == "Help"), None)
    if help_action is not None:
        mb.insertMenu(help_action, menu)
    else:
        mb.addMenu(menu)
    window.lessons_menu = menu
    window._presenter_actions = {}
    menu.aboutToShow.connect(lambda: _fill_menu(window, menu))
    _fill_menu(window, menu)
    if large_fonts_on():
        set_large_fonts(True)
    return menu


def start_lesson(window, lesson) -> None:
    panel = window.panels.get("lessons")
    if panel is not None and hasattr(panel, "show_lesson"):
        panel.show_lesson(lesson)
    window.lesson_runner.start(lesson)


def _fill_menu(window, menu: QMenu) -> None:
    menu.clear()
    lessons = load_lessons()
    window.lessons = lessons
    for lesson in lessons:
        text = lesson.title if lesson.ok else f"{lesson.title} — unavailable"
        act = QAction(text, menu)
        act.setData(lesson.id)
        act.setEnabled(lesson.ok)
        tip = lesson.problem or (lesson.topic and f"Topic: {lesson.topic}") or lesson.title
        act.setToolTip(tip)
        act.setStatusTip(tip)
        act.triggered.connect(lambda _=False, l=lesson: start_lesson(window, l))
        menu.addAction(act)
    if not lessons:
        none = menu.addAction("No lessons found")
        none.setEnabled(False)
    menu.addSeparator()
    folder = menu.addAction("Open my lessons folder…")
    folder.setToolTip(f"Put your own lesson files here: {user_lessons_dir()}")
    folder.triggered.connect(lambda: _open_lessons_folder(window))
    menu.addSeparator()
    large = QAction("Presenter: &larger fonts", menu, checkable=True)
    large.setChecked(bool(QApplication.instance().property("tvlab_large_fonts")))
    large.toggled.connect(lambda on: set_large_fonts(on))
    contrast = QAction("Presenter: &high-contrast theme", menu, checkable=True)
    contrast.setChecked(str(lab_settings.settings().value("theme", "system")) == HIGH_CONTRAST)
    contrast.toggled.connect(lambda on: window.set_theme(HIGH_CONTRAST if on else "system"))
    reset = QAction("&Reset everything…", menu)
    reset.setToolTip("Default layout, theme and fonts; clear prompt, selection and saved settings")
    reset.triggered.connect(lambda: _confirm_reset(window))
    for a in (large, contrast, reset):
        menu.addAction(a)
    window._presenter_actions = {"large_fonts": large, "high_contrast": contrast}
    menu.addSeparator()
    export = QAction("&Export session…", menu)
    export.setToolTip("Save prompt, settings and a picture of every view to a folder with an HTML page")
    export.triggered.connect(lambda: _export_dialog(window))
    menu.addAction(export)


def _open_lessons_folder(window) -> None:
    d = user_lessons_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        window.session.error.emit(f"Cannot create {d}: {err.strerror or err}.")
        return
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(d)))


def _confirm_reset(window) -> None:
    answer = QMessageBox.question(window, "Reset everything",
                                  "Reset the layout, theme, fonts, prompt and selection, and clear saved settings?")
    if answer == QMessageBox.Yes:
        reset_everything(window)


def _export_dialog(window) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Export the session into this folder",
                                              str(Path.home()))
    if folder:
        export_to(window, folder)


def export_to(window, folder: str | Path, show: Callable[[str, str], None] | None = None) -> Optional[Path]:
    """Export and tell the user how it went (a message box, and the status bar)."""
    panel = window.panels.get("lessons")
    lesson = getattr(getattr(window, "lesson_runner", None), "lesson", None)
    try:
        out = export_session(window, folder, lesson)
    except InputError as err:
        window.session.error.emit(str(err))
        (show or _message(window, QMessageBox.Warning))("Export failed", str(err))
        return None
    window.statusBar().showMessage(f"Session exported to {out}", 15000)
    if panel is not None and hasattr(panel, "set_status"):
        panel.set_status(f"Session exported to {out}/index.html")
    return out


def _message(window, icon):
    def show(title: str, text: str) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.Ok, window)
        box.open()   # not modal-blocking: the lab keeps running
    return show
