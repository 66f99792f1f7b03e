"""The decoded text as a strip of tokens coloured by probability; click one to show its step."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTextBrowser

from lab.ui import theme as lab_theme
from lab.ui.widgets.prob_bars import prob_color

_WRAP = "<div style='font-size:x-large; line-height:150%'>{}</div>"   # follows presenter fonts


class DecodeText(QTextBrowser):
    """The prompt in grey, then each generated token (or each mask of a fill-in-the-mask)."""

    step_clicked = Signal(int)       # index of the generated token, or of the mask

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._anchor)
        self.setMinimumHeight(90)
        self.setToolTip("Each generated token is coloured by the model's probability (red unlikely, green "
                        "likely). Click a token to show its step.")

    def show_decode(self, snap) -> None:
        """A ``DecodeSnapshot``: the focused step is underlined."""
        focus = snap.focus_step
        parts = [f'<span style="color:{lab_theme.tone("faint")}">{escape("".join(snap.prompt_tokens))}</span>']
        if snap.seq2seq:
            parts.append(f'<br><span style="color:{lab_theme.tone("faint")}">→ </span>')
        for i, item in enumerate(snap.timeline):
            bg = prob_color(item.raw_prob).name()
            border = "border-bottom: 3px solid #f08c28;" if i + 1 == focus else ""
            tok = escape(item.token).replace("\n", "⏎<br>") or "∅"
            tip = (f"step {i + 1}: {item.token!r} · raw p {item.raw_prob:.3f} · processed p {item.prob:.3f} · "
                   f"{item.how}")
            deco = "text-decoration: underline;" if i + 1 == focus else "text-decoration: none;"
            parts.append(f'<a href="s{i}" title="{escape(tip)}" style="color:{lab_theme.tone("ink")};{deco}">'
                         f'<span style="background:{bg};{border}">{tok}</span></a>')
        self.setHtml(_WRAP.format("".join(parts)))
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def show_fill(self, snap) -> None:
        """A ``FillSnapshot``: open masks in violet, filled ones coloured by probability."""
        parts = []
        masks = {p: k for k, p in enumerate(snap.positions)}
        for i, tok in enumerate(snap.tokens):
            if i in masks:
                k = masks[i]
                mv = snap.views[k]
                if mv.filled_with is None:
                    html = f'<span style="background:#d9c8f0; border:1px solid #7a4fc0">[MASK {k + 1}]</span>'
                else:
                    ch = next((c for c in mv.view.candidates if c.chosen), None)
                    bg = prob_color(ch.raw_prob if ch else 0.5).name()
                    html = f'<span style="background:{bg}">{escape(tok)}</span>'
                deco = "underline" if k == snap.focus else "none"
                parts.append(f'<a href="m{k}" style="color:{lab_theme.tone("ink")}; text-decoration:{deco}">{html}</a> ')
            else:
                parts.append(f'<span style="color:{lab_theme.tone("muted")}">{escape(tok)}</span> ')
        self.setHtml(_WRAP.format("".join(parts)))

    def _anchor(self, url) -> None:
        s = url.toString()
        if s[:1] in ("s", "m") and s[1:].isdigit():
            self.step_clicked.emit(int(s[1:]))
