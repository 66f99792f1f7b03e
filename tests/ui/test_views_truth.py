"""Teaching views show what they claim: plot ranges cover their data, one bar per precision."""
import pytest
from PySide6.QtCore import QPointF

from lab.core.precision.output import PrecisionRow
from lab.ui.widgets.precision_chart import PrecisionChart
from lab.ui.widgets.prob_bars import StepChart


def test_step_chart_range_follows_the_entropies(qtbot):
    chart = StepChart()
    qtbot.addWidget(chart)
    chart.set_steps([], None, [], 0)                       # the empty chart pins 0..1
    chart.set_steps([4.72], None, ["bank"], 1)             # a fill-mask step of 4.72 bits
    lo, hi = chart.ent.viewRange()[1]
    assert lo <= 0 and hi >= 4.72
    chart.set_steps([0.3, 6.9, 2.0], [0.0, 0.1, 0.9], ["a", "b", "c"], 2)
    lo, hi = chart.ent.viewRange()[1]
    assert lo <= 0 and hi >= 6.9


def _bar_centres_on_screen(chart: PrecisionChart) -> list[bool]:
    vb = chart.plot.getViewBox()
    area = chart.plot.viewport().rect()
    seen = []
    for i, h in enumerate(chart.values()):
        p = chart.plot.mapFromScene(vb.mapViewToScene(QPointF(i, h / 2)))
        seen.append(area.contains(p))
    return seen


@pytest.mark.parametrize("width", [230, 300, 430])
def test_precision_chart_draws_one_visible_bar_per_precision(qtbot, width):
    chart = PrecisionChart()
    qtbot.addWidget(chart)
    chart.resize(width, 300)
    chart.show()
    qtbot.waitExposed(chart)
    rows = [PrecisionRow("fp32", file_bytes=437_021, top1_agreement=1.0),
            PrecisionRow("fp16", file_bytes=362_865, top1_agreement=1.0),
            PrecisionRow("int8", file_bytes=318_008, top1_agreement=0.969),
            PrecisionRow("int4", file_bytes=289_456, top1_agreement=0.906)]
    chart.set_rows(rows)
    qtbot.wait(20)
    ticks = [t for _, t in chart.plot.getAxis("bottom")._tickLevels[0]]
    assert ticks == ["fp32", "fp16", "int8", "int4"]
    assert _bar_centres_on_screen(chart) == [True] * 4
    chart.metric_box.setCurrentIndex(3)                    # top-1 agreement: int8's 96.9 % drawn
    qtbot.wait(20)
    assert chart.values()[2] == pytest.approx(96.9)
    assert _bar_centres_on_screen(chart) == [True] * 4
