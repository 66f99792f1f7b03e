"""Session export: prompt, settings, panel results and a picture of every view, in a new
folder with an index.html that any browser opens."""
from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from PySide6.QtWidgets import QApplication, QMessageBox

import lab
from lab.core import atomic
from lab.core import lessons as core_lessons
from lab.core.errors import InputError
from lab.ui import settings as lab_settings
from lab.ui.widgets.open_folder import open_folder
from lab.ui.workshop.presenter import large_fonts_shown

if TYPE_CHECKING:
    from lab.ui.main_window import MainWindow


def _wait(ms: int) -> None:
    app = QApplication.instance()
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def export_session(window: "MainWindow", parent: str | Path,
                   lesson: Optional[core_lessons.Lesson] = None) -> Path:
    """Write prompt, settings, panel results and a PNG of every panel to a new folder in
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
        for panel in window.panels.values():
            data.update(_panel_results(panel))
        data["images"] = images
        (tmp / "session.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str),
                                          encoding="utf-8")
        (tmp / "index.html").write_text(session_html(data), encoding="utf-8")
        atomic.publish_folder(tmp, final)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, InputError):
            raise
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise InputError(f"Could not export the session to {parent}: {reason}.") from None
    return final


def _panel_results(panel) -> dict:
    """The panel's ``export_data()``; a failure is written down instead of stopping the export."""
    try:
        data = panel.export_data()
        json.dumps(data, default=str)
        return data
    except Exception as err:
        return {f"{panel.panel_id}_error": f"could not export: {err}"}


def _export_images(window: "MainWindow", folder: Path) -> dict[str, str]:
    """{title: file name}; each dock is brought to the front for its pictures."""
    images: dict[str, str] = {}
    front = window.front_docks()
    for pid, panel in window.panels.items():
        if not window.bring_forward(pid):
            continue
        _wait(60)
        try:
            paths = panel.export_views(folder)
        except OSError:
            paths = []
        if not paths:
            raise InputError(f"Could not save a picture of the {pid} panel.")
        title = panel.title or pid
        for i, path in enumerate(paths):
            images[title if i == 0 else f"{title} ({Path(path).stem})"] = Path(path).name
    for pid in front:
        window.bring_forward(pid)
    _wait(60)
    if window.grab().save(str(folder / "window.png"), "PNG"):
        images = {"Whole window": "window.png", **images}
    return images


def _tokens(trace) -> Optional[list[str]]:
    """The prompt's tokens as the panels label them (the text they cover)."""
    if trace is None:
        return None
    from lab.core.trace import display_tokens

    return display_tokens(trace, trace.stacks[0])


def session_data(window: "MainWindow", lesson: Optional[core_lessons.Lesson] = None) -> dict:
    s = window.session
    card = s.card.to_dict() if s.card is not None else None
    panels = {}
    for pid, panel in window.panels.items():
        try:
            state = panel.lesson_state()
            json.dumps(state, default=str)
        except Exception as err:
            state = {"error": f"could not export: {err}"}
        if state:
            panels[pid] = state
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
                      "large_fonts": large_fonts_shown()},
        "panels": panels,
    }


def _tree_html(node, depth: int = 0) -> str:
    """A tree as nested lists: dicts with 'children' (and 'token'/'text'), else JSON."""
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


_BASE_KEYS = ("lab", "exported", "model", "prompt", "target", "selection", "tokens", "lesson",
              "presenter", "panels", "images")


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
    for key, value in data.items():   # what panels added through export_data(), e.g. the decode tree
        if key not in _BASE_KEYS and value is not None:
            parts.append(f"<h2>{e(key.replace('_', ' ').capitalize())}</h2>" + _tree_html(value))
    parts.append("<h2>Views</h2>")
    for title, name in (data.get("images") or {}).items():
        parts.append(f"<h3>{e(title)}</h3><img src='{e(name)}' alt='{e(title)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def export_to(window: "MainWindow", folder: str | Path,
              show: Callable[[str, str], None] | None = None) -> Optional[Path]:
    """Export and tell the user how it went (a message box, with "Open folder" on success; the
    status bar; the lessons panel). ``show(title, text)`` replaces the message boxes."""
    try:
        out = export_session(window, folder, window.lesson_runner.lesson)
    except InputError as err:
        window.session.error.emit(str(err))
        (show or _message(window, QMessageBox.Warning))("Export failed", str(err))
        return None
    window.statusBar().showMessage(f"Session exported to {out}", 15000)
    window.lesson_runner.status.emit(f"Session exported to {out}/index.html")
    if show is None:
        box = QMessageBox(QMessageBox.Information, "Session exported", f"The session is in\n{out}",
                          QMessageBox.Close, window)
        box.addButton("Open folder", QMessageBox.ActionRole).clicked.connect(lambda: open_folder(out))
        box.setObjectName("export-done")
        box.open()   # not modal-blocking: the lab keeps running
    return out


def _message(window, icon):
    def show(title: str, text: str) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.Ok, window)
        box.open()   # not modal-blocking: the lab keeps running
    return show
