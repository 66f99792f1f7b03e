"""TokenChips: a prompt drawn as coloured token chips, each with its id.

One widget paints every chip itself (no child widget per token), lays them out once per
width with cached label widths, and paints only the chips inside the exposed rectangle,
so a 20,000-character text redraws in milliseconds. Hover and click report the token
index; the source-text view highlights the hovered token's characters.
"""
from __future__ import annotations

import bisect
from typing import Optional

from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QTextEdit, QToolTip, QWidget

# Pastel fills cycled per token, like the web tokenizer playgrounds.
FILLS = ["#cfe3ff", "#ffd9b3", "#c9f0c9", "#f6c8e0", "#fff0a8", "#d9ccff", "#c4ecec"]
SPECIAL_FILL = "#4a4f57"
UNK_FILL = "#ffb4a8"
SELECTED = "#d03030"
HOVER = "#1f6fe0"

MAX_CHIPS = 20_000           # more tokens than this are counted but not drawn
MAX_LABEL = 24               # characters shown on one chip (the tooltip has the rest)


class TokenChips(QWidget):
    hovered = Signal(int)        # token index, -1 when the pointer leaves the chips
    clicked = Signal(int)

    PAD_X, PAD_Y, GAP_X, GAP_Y = 5, 2, 3, 5

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Minimum)
        self.setAccessibleName("Token chips")
        self.setAccessibleDescription("No tokens yet")
        self.tz = None
        self.readable = False
        self.show_ids = True
        self.selected = -1
        self.hover = -1
        self._xs: list[int] = []            # chip i is QRect(_xs[i], _ys[i], _ws[i], chip_height())
        self._ys: list[int] = []
        self._ws: list[int] = []
        self._row_tops: list[int] = []      # y of each row, for finding visible chips
        self._row_first: list[int] = []     # first chip index of each row
        self._laid_width = -1
        self._widths: dict[str, int] = {}
        self._labels: list[str] = []
        self.label_font = QFont(self.font())
        self.id_font = QFont(self.font())
        self.id_font.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.75))
        self._fm = QFontMetrics(self.label_font)
        self._fm_id = QFontMetrics(self.id_font)
        self._height = 40
        base = self._fm.height() + 2 * self.PAD_Y
        self._chip_h = {False: base, True: base + self._fm_id.height()}
        self._fills = [QColor(c) for c in FILLS]
        self._edges = [QPen(c.darker(135), 1) for c in self._fills]
        self._special_fill, self._unk_fill = QColor(SPECIAL_FILL), QColor(UNK_FILL)
        self._pen_selected = QPen(QColor(SELECTED), 2.5)
        self._pen_hover = QPen(QColor(HOVER), 2)
        self._pen_special = QPen(QColor("#111111"), 1, Qt.DashLine)
        self._text_dark, self._text_light = QColor("#1b1b1b"), QColor("#ffffff")
        self._text_split = QColor("#7a1fa2")
        self._id_dark, self._id_light = QColor("#555555"), QColor("#d8d8d8")

    # --- data -------------------------------------------------------------------------
    def set_tokens(self, tz) -> None:
        self.tz = tz
        self.setAccessibleDescription(
            "No tokens yet" if tz is None else
            f"{tz.count} tokens: " + " | ".join(tz.label(i, True) for i in range(min(tz.count, 60))))
        self.hover = -1
        if tz is None or self.selected >= tz.count:
            self.selected = -1
        self._relabel()

    def set_readable(self, on: bool) -> None:
        self.readable = bool(on)
        self._relabel()

    def set_show_ids(self, on: bool) -> None:
        self.show_ids = bool(on)
        self._laid_width = -1
        self.relayout()

    def set_selected(self, index: int) -> None:
        if index != self.selected:
            old, self.selected = self.selected, index
            self._update_chip(old)
            self._update_chip(index)

    @property
    def drawn(self) -> int:
        return len(self._xs)

    def _relabel(self) -> None:
        tz = self.tz
        if tz is None:
            self._labels = []
        else:
            self._labels = tz.labels(self.readable, MAX_CHIPS)
        self._laid_width = -1
        self.relayout()

    # --- layout -----------------------------------------------------------------------
    def _text_width(self, s: str) -> int:
        w = self._widths.get(s)
        if w is None:
            shown = s if len(s) <= MAX_LABEL else s[: MAX_LABEL - 1] + "…"
            w = self._fm.horizontalAdvance(shown)
            self._widths[s] = w
        return w

    def chip_height(self) -> int:
        return self._chip_h[self.show_ids]

    def relayout(self) -> None:
        width = max(self.width(), 120)
        if width == self._laid_width:
            return
        self._laid_width = width
        self._xs, self._ys, self._ws = [], [], []
        self._row_tops, self._row_first = [], []
        tz = self.tz
        h = self.chip_height()
        x, y = self.GAP_X, self.GAP_Y
        labels = self._labels
        if tz is not None and labels:
            tw = self._text_width
            widths = [tw(lab) for lab in labels]
            if self.show_ids:
                id_w = self._fm_id.horizontalAdvance
                id_cache: dict[int, int] = {}
                for i, tid in enumerate(tz.ids[: len(labels)]):
                    iw = id_cache.get(tid)
                    if iw is None:
                        iw = id_cache[tid] = id_w(str(tid))
                    if iw > widths[i]:
                        widths[i] = iw
            text = tz.text
            # A token that ends a line of the text ends a row of chips too.
            breaks = [0 < e <= len(text) and text[e - 1] == "\n" for e in tz.ends[: len(labels)]]
            pad, gap, right = 2 * self.PAD_X, self.GAP_X, width - self.GAP_X
            step = h + self.GAP_Y
            xs, ys, ws = self._xs, self._ys, self._ws
            tops, firsts = self._row_tops, self._row_first
            tops.append(y)
            firsts.append(0)
            last = len(labels) - 1
            for i, w in enumerate(widths):
                w += pad
                if x + w > right and x > gap:
                    x, y = gap, y + step
                    tops.append(y)
                    firsts.append(i)
                xs.append(x)
                ys.append(y)
                ws.append(w)
                x += w + gap
                if breaks[i] and i < last:
                    x, y = gap, y + step
                    tops.append(y)
                    firsts.append(i + 1)
        self._height = (y + h + self.GAP_Y) if self._xs else 40
        self.setMinimumHeight(self._height)
        self.updateGeometry()
        self.update()

    @property
    def rects(self) -> list:
        """Every chip's rectangle (built on demand; painting uses the columns directly)."""
        h = self.chip_height()
        return [QRect(x, y, w, h) for x, y, w in zip(self._xs, self._ys, self._ws)]

    def sizeHint(self) -> QSize:
        return QSize(400, self._height)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.relayout()

    def _visible_range(self, rect: QRect) -> range:
        if not self._xs:
            return range(0)
        h = self.chip_height()
        r0 = max(0, bisect.bisect_right(self._row_tops, rect.top() - h) - 1)
        r1 = bisect.bisect_right(self._row_tops, rect.bottom())
        first = self._row_first[r0]
        last = self._row_first[r1] if r1 < len(self._row_first) else len(self._xs)
        return range(first, last)

    def index_at(self, pos: QPoint) -> int:
        for i in self._visible_range(QRect(pos.x(), pos.y(), 1, 1)):
            if self.chip_rect(i).contains(pos):
                return i
        return -1

    def chip_rect(self, index: int) -> QRect:
        if 0 <= index < len(self._xs):
            return QRect(self._xs[index], self._ys[index], self._ws[index], self.chip_height())
        return QRect()

    # --- painting ---------------------------------------------------------------------
    def _update_chip(self, i: int) -> None:
        if 0 <= i < len(self._xs):
            self.update(self.chip_rect(i).adjusted(-3, -3, 3, 3))

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, True)
        tz = self.tz
        if tz is None or not self._xs:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect().adjusted(6, 6, -6, -6), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                       "No tokens yet: type a prompt (an empty prompt shows only the tokens the tokenizer adds).")
            return
        fm_h, id_h = self._fm.height(), self._fm_id.height()
        # Inside a scroll area the event rectangle can be the whole (very tall) widget:
        # draw only what can be seen.
        exposed = event.rect()
        seen = self.visibleRegion().boundingRect()
        if not seen.isEmpty():
            exposed = exposed.intersected(seen)
        h = self.chip_height()
        xs, ys, ws = self._xs, self._ys, self._ws
        top, bottom = exposed.top() - h, exposed.bottom()
        special_l, ids, labels = tz.special, tz.ids, self._labels
        center = Qt.AlignHCenter | Qt.AlignVCenter | Qt.TextSingleLine
        px, py = self.PAD_X, self.PAD_Y
        for i in self._visible_range(exposed):
            y = ys[i]
            if y < top or y > bottom:
                continue
            x, w = xs[i], ws[i]
            special = special_l[i]
            role = tz.role(i) if special or ids[i] in tz.info.special_roles else ""
            if special:
                fill, fg, edge = self._special_fill, self._text_light, self._pen_special
            elif role == "UNK":
                fill, fg, edge = self._unk_fill, self._text_dark, self._edges[0]
            else:
                k = i % len(self._fills)
                fill, fg, edge = self._fills[k], self._text_dark, self._edges[k]
            if i == self.selected:
                edge = self._pen_selected
            elif i == self.hover:
                edge = self._pen_hover
            p.setBrush(fill)
            p.setPen(edge)
            p.drawRoundedRect(QRectF(x + 0.5, y + 0.5, w - 1, h - 1), 4, 4)
            lab = labels[i]
            if len(lab) > MAX_LABEL:
                lab = lab[: MAX_LABEL - 1] + "…"
            p.setPen(self._text_split if "<0x" in lab and tz.split_character(i) else fg)
            p.setFont(self.label_font)
            p.drawText(QRect(x + px, y + py, w - 2 * px, fm_h), center, lab)
            if self.show_ids:
                p.setFont(self.id_font)
                p.setPen(self._id_light if special else self._id_dark)
                p.drawText(QRect(x, y + py + fm_h, w, id_h), center, str(ids[i]))
        p.end()

    # --- pointer ----------------------------------------------------------------------
    def tooltip_text(self, i: int) -> str:
        tz = self.tz
        if tz is None or not 0 <= i < tz.count:
            return ""
        lines = [f"token {i}   id {tz.ids[i]}", f"piece: {tz.pieces[i]}",
                 f"text: {tz.span_text(i)!r}   characters {tz.starts[i]}–{tz.ends[i]}"]
        b = tz.byte_values(i)
        if b is not None:
            lines.append("bytes: " + " ".join(f"{x:02X}" for x in b)
                         + ("   (part of a character split across tokens)" if tz.split_character(i) else ""))
        if tz.role(i):
            lines.append(f"special token: {tz.role(i)}" if tz.special[i] else "unknown token (UNK)")
        return "\n".join(lines)

    def set_hover(self, i: int) -> None:
        if i != self.hover:
            old, self.hover = self.hover, i
            self._update_chip(old)
            self._update_chip(i)
            self.hovered.emit(i)

    def mouseMoveEvent(self, event):
        i = self.index_at(event.position().toPoint())
        self.set_hover(i)
        if i >= 0:
            QToolTip.showText(event.globalPosition().toPoint(), self.tooltip_text(i), self, self.chip_rect(i))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event):
        self.set_hover(-1)
        super().leaveEvent(event)

    def mousePressEvent(self, event):
        if event.button() == Qt.LeftButton:
            i = self.index_at(event.position().toPoint())
            if i >= 0:
                self.clicked.emit(i)
        super().mousePressEvent(event)


class SourceText(QPlainTextEdit):
    """The prompt as plain text, with the hovered or selected token's characters highlighted.

    Token offsets count code points; Qt counts UTF-16 units, so characters outside the
    Basic Multilingual Plane (emoji) are converted before highlighting.
    """

    SHOW_CHARS = 200_000

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        self._text = ""
        self._astral = False
        self.highlighted: tuple[int, int] = (0, 0)

    def set_source(self, text: str) -> None:
        shown = text[: self.SHOW_CHARS]
        self._text = shown
        self._astral = any(ord(c) > 0xFFFF for c in shown)
        self.setPlainText(shown + ("\n…" if len(text) > len(shown) else ""))
        self.highlight(0, 0)

    def _utf16(self, pos: int) -> int:
        pos = min(pos, len(self._text))
        if not self._astral:
            return pos
        return len(self._text[:pos].encode("utf-16-le")) // 2

    def highlight(self, start: int, end: int, color: str = "#ffe066") -> None:
        self.highlighted = (start, end)
        if end <= start or start >= len(self._text):
            self.setExtraSelections([])
            return
        sel = QTextEdit.ExtraSelection()
        cur = QTextCursor(self.document())
        cur.setPosition(self._utf16(start))
        cur.setPosition(self._utf16(end), QTextCursor.KeepAnchor)
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(color))
        fmt.setForeground(QColor("#000000"))
        sel.cursor = cur
        sel.format = fmt
        self.setExtraSelections([sel])
        self.setTextCursor(QTextCursor(cur.block()))
        self.ensureCursorVisible()

    def highlighted_text(self) -> str:
        sels = self.extraSelections()
        return sels[0].cursor.selectedText().replace("\u2029", "\n") if sels else ""
