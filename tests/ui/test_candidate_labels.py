"""The candidate bars name only as many tokens as fit their axis (they overlapped in a short
chart with presenter fonts), always including the chosen one."""
from dataclasses import dataclass

from PySide6.QtGui import QFontMetrics

from lab.ui.widgets.prob_bars import CandidateBars


@dataclass
class Cand:
    id: int
    token: str
    raw_prob: float
    prob: float
    removed: bool = False
    removed_by: str = ""
    chosen: bool = False


def shown_ticks(bars):
    return [t for t, _ in bars.bars.getAxis("left")._tickLevels[0]]


def test_labels_thin_out_to_fit_and_keep_the_chosen(qtbot):
    bars = CandidateBars()
    qtbot.addWidget(bars)
    bars.resize(500, 260)
    bars.show()
    qtbot.waitExposed(bars)
    cands = [Cand(i, f"tok{i}", 0.5 / (i + 1), 0.5 / (i + 1), chosen=(i == 7)) for i in range(30)]
    bars.set_candidates(cands)
    qtbot.wait(20)
    rows = shown_ticks(bars)
    height = bars.bars.getViewBox().sceneBoundingRect().height()
    line = QFontMetrics(bars.bars.getAxis("left").font()).lineSpacing()
    assert 7 in rows and 1 < len(rows) < 30
    gaps = sorted(rows)
    assert min(b - a for a, b in zip(gaps, gaps[1:])) * height / 30 >= line * 0.95   # no two labels touch
    bars.resize(500, 1400)                      # room for every label: all are named
    qtbot.wait(20)
    assert len(shown_ticks(bars)) == 30
