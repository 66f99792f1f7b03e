"""Every view fits its window, side docks keep their width, the presenter layout scales
every text, and every plot follows the theme (lab.ui.fit_check, lab.ui.theme)."""
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QTabBar, QTableWidget, QVBoxLayout, QWidget

from lab.ui import fit_check
from lab.ui import theme as lab_theme


def _window(qtbot, size=(1400, 900)):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(50)
    return win


@pytest.fixture
def light_theme():
    app = QApplication.instance()
    lab_theme.apply(app, "light")
    yield app
    lab_theme.apply(app, "light")


@pytest.fixture
def normal_fonts():
    from lab.ui.workshop import set_large_fonts

    yield
    set_large_fonts(False)


# --- the checker ------------------------------------------------------------------------
def test_checker_finds_sideways_scrolling_data_outside_and_cut_titles(qtbot):
    box = QWidget()
    qtbot.addWidget(box)
    lay = QVBoxLayout(box)
    table = QTableWidget(2, 12)
    table.setObjectName("wide-table")
    plot = pg.PlotWidget()
    plot.plot([0, 1, 2], [0, 5, 10])
    plot.setXRange(0, 2, padding=0)
    plot.setYRange(0, 1, padding=0)           # the data reaches 10
    plot.getPlotItem().disableAutoRange()
    plot.setTitle("a title far too long for a plot of two hundred pixels, surely cut")
    lay.addWidget(table)
    lay.addWidget(plot)
    box.resize(220, 400)
    box.show()
    qtbot.waitExposed(box)
    qtbot.wait(20)
    assert any("wide-table" in m for m in fit_check.horizontal_scrolls(box))
    assert any("lies outside the view" in m for m in fit_check.data_outside(box))
    assert fit_check.text_cut(box)
    fitting = pg.PlotWidget()
    fitting.plot([0, 1, 2], [0, 5, 10])
    fitting.setTitle("short")
    lay.removeWidget(plot)
    plot.hide()
    lay.addWidget(fitting)
    table.setColumnCount(1)
    qtbot.wait(50)
    assert fit_check.data_outside(box) == []
    assert fit_check.text_cut(box) == []
    assert fit_check.horizontal_scrolls(box) == []


# --- item 7: fits at the default size and at 1024x700 -------------------------------------
@pytest.mark.parametrize("width", [1000, 600])
def test_scaling_plots_titles_axes_and_legends_fit(qtbot, width):
    from lab.core import scaling as sc
    from lab.ui.widgets.scaling_plots import ScalingPlots

    plots = ScalingPlots([], str)
    qtbot.addWidget(plots)
    plots.draw_laws([sc.get_law("chinchilla-1")], "chinchilla-1")
    plots.resize(width, 620)
    plots.show()
    qtbot.waitExposed(plots)
    for tab in range(plots.count()):
        plots.setCurrentIndex(tab)
        qtbot.wait(30)
        assert fit_check.text_cut(plots) == [], plots.tabText(tab)


def test_memory_calculator_results_column_is_wide_enough(qtbot):
    from lab.ui.widgets.memory_calculator import RESULTS_CHARS, MemoryCalculator

    calc = MemoryCalculator(lambda text: float(text) if text else None)
    qtbot.addWidget(calc)
    calc.resize(620, 560)          # the precision panel at 1024x700
    calc.show()
    qtbot.waitExposed(calc)
    qtbot.wait(20)
    assert calc.calc_view.width() >= calc.fontMetrics().averageCharWidth() * RESULTS_CHARS >= 250


def test_converter_table_needs_no_sideways_scrolling_at_the_default_size(qtbot, session):
    from lab.ui.panels.precision import PrecisionPanel

    panel = PrecisionPanel(session)
    qtbot.addWidget(panel)
    panel.resize(980, 700)         # the main views' width in the default 1400x900 window
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(30)
    assert fit_check.horizontal_scrolls(panel) == []
    assert fit_check.text_cut(panel) == []


def test_waterfall_shows_every_stage(qtbot):
    from lab.ui.widgets.waterfall_view import WaterfallView

    class Stage:
        def __init__(self, name, applied):
            self.name, self.applied, self.survivors, self.mass_removed = name, applied, 50, 0.1
            self.entropy_bits, self.label, self.note, self.probs = 1.0, name, "off", np.ones(4) / 4

    class View:
        stages = [Stage(n, n != "penalties") for n in ("raw", "penalties", "rules", "temperature",
                                                          "top-k", "top-p", "min-p")]
        candidates = []

    w = WaterfallView()
    qtbot.addWidget(w)
    w.resize(420, 300)             # the decoding panel's side tabs at 1400x900
    w.show()
    w.set_view(View())
    qtbot.wait(30)
    t = w.table
    assert t.verticalScrollBar().maximum() == 0
    assert t.viewport().height() >= sum(t.rowHeight(r) for r in range(t.rowCount()))


def test_decoding_bars_are_not_drawn_over_at_the_default_size(qtbot):
    win = _window(qtbot)
    win.show_panel("decoding")
    qtbot.wait(50)
    from lab.ui.widgets.prob_bars import CandidateBars, DrawStrip

    panel = win.panels["decoding"]
    bars, draw = panel.findChild(CandidateBars), panel.findChild(DrawStrip)
    assert bars.geometry().bottom() < draw.geometry().top()
    win.close()


# --- item 8: side docks keep their width ---------------------------------------------------
def test_extra_width_goes_to_the_main_views_and_a_small_window_is_forgotten(qtbot):
    from lab.ui import settings as lab_settings

    win = _window(qtbot)
    model = win.docks["model"]
    side = model.width()
    assert 0.2 * win.width() < side < 0.35 * win.width()

    def settled(width, height, dock_width):
        win.resize(width, height)
        try:
            qtbot.waitUntil(lambda: win.width() == width and abs(model.width() - dock_width) <= 3, timeout=3000)
        except Exception:
            raise AssertionError((width, win.width(), model.width(), dock_width, win.side_width()))

    settled(1920, 1080, side)                   # the main views took the extra width
    settled(1024, 700, min(side, int(0.4 * 1024)))
    settled(1400, 900, side)                    # not 42 % after the round trip
    win.save_settings()
    assert int(lab_settings.settings().value("side_width")) == win.side_width()
    assert abs(win.side_width() - side) <= 8       # what was asked; Qt takes the separator off
    win.close()


def test_a_width_the_user_drags_is_kept(qtbot, monkeypatch):
    win = _window(qtbot)
    model, main = win.docks["model"], win.docks["attention"]
    # what dragging the separator does: the docks resized while the mouse button is held
    monkeypatch.setattr(QApplication, "mouseButtons", staticmethod(lambda: Qt.LeftButton))
    win.resizeDocks([model, main], [450, win.width() - 450], Qt.Horizontal)
    qtbot.waitUntil(lambda: abs(model.width() - 450) <= 14, timeout=3000)
    monkeypatch.undo()
    assert abs(win.side_width() - 450) <= 14
    win.resize(1700, 950)
    try:
        qtbot.waitUntil(lambda: win.width() == 1700 and abs(model.width() - 450) <= 14, timeout=3000)
    except Exception:
        raise AssertionError((win.width(), model.width(), win.side_width()))
    win.close()


# --- item 9: presenter layout -------------------------------------------------------------
def test_presenter_layout_hides_the_side_docks_and_scales_every_text(qtbot, normal_fonts):
    from lab.ui.widgets.scaling_plots import ScalingPlots
    from lab.ui.workshop import presenter_layout_shown, set_presenter_layout

    win = _window(qtbot)
    plots = win.panels["scaling"].findChild(ScalingPlots)
    title = plots.plot_n.getPlotItem().titleLabel
    axis = plots.plot_n.getPlotItem().getAxis("bottom")
    hint = win.panels["decoding"].findChild(QLabel)
    before = (QApplication.instance().font().pointSizeF(), title.item.boundingRect().width(),
              axis.label.font().pointSizeF(), hint.font().pointSizeF())
    main_before = win.docks["attention"].width()
    set_presenter_layout(win, True)
    qtbot.wait(50)
    assert presenter_layout_shown(win)
    assert win.docks["model"].isHidden() and win.docks["lessons"].isHidden()
    assert win.docks["attention"].width() > main_before + 200
    after = (QApplication.instance().font().pointSizeF(), title.item.boundingRect().width(),
             axis.label.font().pointSizeF(), hint.font().pointSizeF())
    for b, a in zip(before, after):
        assert a >= 1.3 * b, (before, after)
    bars = [b for b in win.findChildren(QTabBar) if b.isVisible()]
    assert bars and all(b.elideMode() == Qt.ElideNone for b in bars)
    win.save_settings()                 # the presenter layout is never the saved one
    set_presenter_layout(win, False)
    qtbot.wait(50)
    assert not win.docks["model"].isHidden() and not presenter_layout_shown(win)
    assert QApplication.instance().font().pointSizeF() == pytest.approx(before[0])
    win.close()


# --- item 10: theme ------------------------------------------------------------------------
def _lightness(c) -> float:
    return QColor(c).lightnessF()


def test_theme_switch_restyles_every_plot_and_tinted_label(qtbot, light_theme):
    win = _window(qtbot)
    for pid in win.panels:
        win.show_panel(pid)
    note = QLabel("a note")
    qtbot.addWidget(note)
    lab_theme.tint(note, "muted")
    light_note = note.styleSheet()
    win.set_theme("dark")
    qtbot.wait(20)
    views = [w for w in QApplication.instance().allWidgets() if isinstance(w, pg.GraphicsView)]
    assert len(views) > 10
    for view in views:
        brush = view.backgroundBrush()
        if brush.style() != Qt.NoBrush:
            assert _lightness(brush.color()) < 0.3, type(view).__name__
        for item in view.scene().items():
            if isinstance(item, pg.AxisItem):
                assert _lightness(item.textPen().color()) > 0.7
            elif isinstance(item, pg.LabelItem):
                assert _lightness(item.opts["color"]) > 0.7
    assert note.styleSheet() != light_note and lab_theme.tone("muted") in note.styleSheet()
    assert _lightness(lab_theme.tone("ink")) > 0.7
    win.set_theme("light")
    for view in views:
        if view.backgroundBrush().style() != Qt.NoBrush:
            assert _lightness(view.backgroundBrush().color()) > 0.9
    win.close()


def test_dark_tones_contrast_with_the_dark_background(light_theme):
    lab_theme.apply(light_theme, "dark")
    bg = QColor(lab_theme.plot_colors()[0])

    def luminance(c: QColor) -> float:
        def ch(v):
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * ch(c.red()) + 0.7152 * ch(c.green()) + 0.0722 * ch(c.blue())

    for name in ("warn", "error", "good", "muted", "faint", "ink", "accent"):
        fg = QColor(lab_theme.tone(name))
        ratio = (luminance(fg) + 0.05) / (luminance(bg) + 0.05)
        assert ratio >= 4.5, (name, ratio)


def test_system_theme_follows_the_desktop_while_running(qtbot, light_theme, monkeypatch):
    from lab.ui import settings as lab_settings

    app = light_theme
    lab_settings.settings().setValue("theme", "system")
    lab_theme.follow_system(app, lambda: str(lab_settings.settings().value("theme", "system")))
    lab_theme.apply(app, "system")
    assert lab_theme.current() == "light"
    monkeypatch.setattr(lab_theme, "system_is_dark", lambda: True)
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert lab_theme.current() == "dark"
    lab_settings.settings().setValue("theme", "light")      # a chosen theme does not follow
    lab_theme.apply(app, "light")
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert lab_theme.current() == "light"
