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
        self.tz = None
        self.readable = False
        self.show_ids = True
        self.selected = -1
        self.hover = -1
        self.rects: list[QRect] = []
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

    # --- data -------------------------------------------------------------------------
    def set_tokens(self, tz) -> None:
        self.tz = tz
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
        return len(self.rects)

    def _relabel(self) -> None:
        tz = self.tz
        if tz is None:
            self._labels = []
        else:
            n = min(tz.count, MAX_CHIPS)
            label = tz.label
            r = self.readable
            self._labels = [label(i, r) for i in range(n)]
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
        h = self._fm.height() + 2 * self.PAD_Y
        if self.show_ids:
            h += self._fm_id.height()
        return h

    def relayout(self) -> None:
        width = max(self.width(), 120)
        if width == self._laid_width:
            return
        self._laid_width = width
        self.rects = []
        self._row_tops, self._row_first = [], []
        tz = self.tz
        x, y = self.GAP_X, self.GAP_Y
        h = self.chip_height()
        if tz is not None and self._labels:
            ids = tz.ids
            text = tz.text
            ends = tz.ends
            id_w = self._fm_id.horizontalAdvance
            id_cache: dict[int, int] = {}
            self._row_tops.append(y)
            self._row_first.append(0)
            for i, lab in enumerate(self._labels):
                w = self._text_width(lab)
                if self.show_ids:
                    iw = id_cache.get(ids[i])
                    if iw is None:
                        iw = id_cache[ids[i]] = id_w(str(ids[i]))
                    w = max(w, iw)
                w += 2 * self.PAD_X
                if x + w > width - self.GAP_X and x > self.GAP_X:
                    x, y = self.GAP_X, y + h + self.GAP_Y
                    self._row_tops.append(y)
                    self._row_first.append(i)
                self.rects.append(QRect(x, y, w, h))
                x += w + self.GAP_X
                # A token that ends a line of the text ends a row of chips too.
                e = ends[i]
                if 0 < e <= len(text) and text[e - 1] == "\n" and i + 1 < len(self._labels):
                    x, y = self.GAP_X, y + h + self.GAP_Y
                    self._row_tops.append(y)
                    self._row_first.append(i + 1)
        self._height = (y + h + self.GAP_Y) if self.rects else 40
        self.setMinimumHeight(self._height)
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(400, self._height)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.relayout()

    def _visible_range(self, rect: QRect) -> range:
        if not self.rects:
            return range(0)
        h = self.chip_height()
        r0 = max(0, bisect.bisect_right(self._row_tops, rect.top() - h) - 1)
        r1 = bisect.bisect_right(self._row_tops, rect.bottom())
        first = self._row_first[r0]
        last = self._row_first[r1] if r1 < len(self._row_first) else len(self.rects)
        return range(first, last)

    def index_at(self, pos: QPoint) -> int:
        for i in self._visible_range(QRect(pos.x(), pos.y(), 1, 1)):
            if self.rects[i].contains(pos):
                return i
        return -1

    def chip_rect(self, index: int) -> QRect:
        return self.rects[index] if 0 <= index < len(self.rects) else QRect()

    # --- painting ---------------------------------------------------------------------
    def _update_chip(self, i: int) -> None:
        if 0 <= i < len(self.rects):
            self.update(self.rects[i].adjusted(-3, -3, 3, 3))

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing, True)
        tz = self.tz
        if tz is None or not self.rects:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect().adjusted(6, 6, -6, -6), Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap,
                       "No tokens yet: type a prompt (an empty prompt shows only the tokens the tokenizer adds).")
            return
        fm, fm_id = self._fm, self._fm_id
        dark_text = QColor("#1b1b1b")
        for i in self._visible_range(event.rect()):
            r = self.rects[i]
            if not r.intersects(event.rect()):
                continue
            special = tz.special[i]
            role = tz.role(i)
            if special:
                fill, fg = QColor(SPECIAL_FILL), QColor("#ffffff")
            elif role == "UNK":
                fill, fg = QColor(UNK_FILL), dark_text
            else:
                fill, fg = QColor(FILLS[i % len(FILLS)]), dark_text
            rf = QRectF(r).adjusted(0.5, 0.5, -0.5, -0.5)
            p.setBrush(fill)
            if i == self.selected:
                p.setPen(QPen(QColor(SELECTED), 2.5))
            elif i == self.hover:
                p.setPen(QPen(QColor(HOVER), 2))
            elif special:
                p.setPen(QPen(QColor("#111111"), 1, Qt.DashLine))
            else:
                p.setPen(QPen(fill.darker(135), 1))
            p.drawRoundedRect(rf, 4, 4)
            lab = self._labels[i]
            if len(lab) > MAX_LABEL:
                lab = lab[: MAX_LABEL - 1] + "…"
            p.setPen(fg if not tz.split_character(i) else QColor("#7a1fa2"))
            p.setFont(self.label_font)
            p.drawText(QRect(r.x() + self.PAD_X, r.y() + self.PAD_Y, r.width() - 2 * self.PAD_X, fm.height()),
                       Qt.AlignHCenter | Qt.AlignVCenter | Qt.TextSingleLine, lab)
            if self.show_ids:
                p.setFont(self.id_font)
                p.setPen(QColor("#d8d8d8") if special else QColor("#555555"))
                p.drawText(QRect(r.x(), r.y() + self.PAD_Y + fm.height(), r.width(), fm_id.height()),
                           Qt.AlignHCenter | Qt.AlignVCenter, str(tz.ids[i]))
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
            QToolTip.showText(event.globalPosition().toPoint(), self.tooltip_text(i), self, self.rects[i])
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
