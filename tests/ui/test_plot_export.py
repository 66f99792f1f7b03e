"""Every plot saves through one helper on pyqtgraph's exporters: PNG, SVG and the plotted data as CSV."""
import numpy as np
import pyqtgraph as pg
import pytest

from lab.ui.widgets import plot_export


@pytest.fixture
def curve_plot(qtbot):
    w = pg.PlotWidget(title="Loss")
    w.plot(np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.25, 0.125]), name="loss")
    w.resize(320, 200)
    qtbot.addWidget(w)
    w.show()
    return w


def test_png_svg_and_csv_of_a_plot(curve_plot, tmp_path):
    png = plot_export.export_plot(curve_plot, tmp_path / "plot", "png")
    assert png == tmp_path / "plot.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_export.export_plot(curve_plot, tmp_path / "plot.svg")
    assert "<svg" in svg.read_text() and "<path" in svg.read_text()
    text = plot_export.export_plot(curve_plot, tmp_path / "plot.csv").read_text()
    assert text.startswith("# Loss\n") and "loss_x,loss_y" in text and "0.125" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.csv", "plot.png", "plot.svg"]   # no temp files left


def test_bars_and_layouts_export_their_data(qtbot, tmp_path):
    w = pg.GraphicsLayoutWidget()
    qtbot.addWidget(w)
    top = w.addPlot(title="first")
    top.addItem(pg.BarGraphItem(x=[0, 1, 2], height=[0.7, 0.2, 0.1], width=0.8))
    w.nextRow()
    w.addPlot(title="second").plot([0, 1], [5, 6])
    w.resize(300, 300)
    w.show()
    text = plot_export.csv_text(w)
    assert text.index("# first") < text.index("# second")
    assert "x,height\n0,0.7\n1,0.2\n2,0.1" in text and "5" in text
    assert plot_export.export_plot(w, tmp_path / "l.png").stat().st_size > 0


def test_an_empty_plot_has_no_csv_and_a_bad_format_is_refused(qtbot, tmp_path):
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    assert plot_export.export_plot(w, tmp_path / "e.csv") is None and not (tmp_path / "e.csv").exists()
    with pytest.raises(ValueError, match="png, svg, csv"):
        plot_export.export_plot(w, tmp_path / "e.jpg")


def test_attach_gives_a_save_menu(curve_plot, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    plot_export.attach(curve_plot, name="loss")
    assert curve_plot.contextMenuPolicy() == Qt.CustomContextMenu
    menu = plot_export.export_menu(curve_plot, name="loss")
    assert [a.text() for a in menu.actions()] == ["Save as PNG…", "Save as SVG…", "Save data as CSV…"]
    target = tmp_path / "chosen.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    menu.actions()[2].trigger()
    assert "0.25" in target.read_text()
