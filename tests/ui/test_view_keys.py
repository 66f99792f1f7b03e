"""Window keys: zoom of the main views, full screen, F1 for the lesson text; accessible
names on the painted views."""
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication


def test_zoom_full_screen_and_lesson_help(qtbot):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=False)
    qtbot.addWidget(win)
    win.show()
    keys = win.keys
    shortcuts = {k: [s.toString() for s in a.shortcuts()] for k, a in keys.actions.items()}
    assert QKeySequence(QKeySequence.ZoomIn).toString() in shortcuts["zoom_in"]
    assert shortcuts["full_screen"] == ["F11"] and shortcuts["lesson_help"] == ["F1"]
    main = keys.main_views()
    assert main and win.docks["attention"] in main and win.docks["model"] not in main
    base = QApplication.font().pointSizeF()
    keys.actions["zoom_in"].trigger()
    keys.actions["zoom_in"].trigger()
    assert main[0].widget().font().pointSizeF() > base * 1.2
    assert win.docks["model"].widget().font().pointSizeF() == base      # side docks keep their size
    keys.actions["zoom_out"].trigger()
    assert base < main[0].widget().font().pointSizeF() < base * 1.2
    keys.actions["zoom_reset"].trigger()
    assert main[0].widget().font().pointSizeF() == base
    win.docks["lessons"].hide()
    keys.actions["lesson_help"].trigger()
    assert win.docks["lessons"].isVisible()
    keys.actions["full_screen"].trigger()
    qtbot.waitUntil(win.isFullScreen, timeout=5000)
    keys.actions["full_screen"].trigger()
    qtbot.waitUntil(lambda: not win.isFullScreen(), timeout=5000)
    win.close()


def test_token_chips_and_heatmap_describe_themselves(qtbot):
    import numpy as np

    from lab.ui.widgets.heatmap import Heatmap
    from lab.ui.widgets.token_chips import TokenChips

    chips, heat = TokenChips(), Heatmap()
    qtbot.addWidget(chips)
    qtbot.addWidget(heat)
    assert chips.accessibleName() == "Token chips" and heat.accessibleName()
    heat.set_matrix(np.eye(3, dtype=np.float32), ["a", "b", "c"], ["a", "b", "c"])
    assert heat.accessibleDescription().startswith("3 query tokens by 3 key tokens")
