"""The main window: docks from the registry, View menu, reset, persistence, status bar."""
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDockWidget, QLineEdit

from lab.ui.panels.base import panel_classes


def make_window(qtbot, restore=True):
    from lab.ui.main_window import MainWindow

    win = MainWindow(restore=restore)
    qtbot.addWidget(win)
    win.show()
    return win


def test_every_registered_panel_is_a_named_dock(qtbot):
    win = make_window(qtbot)
    ids = [c.panel_id for c in panel_classes()]
    assert {"model", "prompt"} <= set(ids)
    assert list(win.docks) == [c.panel_id for c in panel_classes() if c.docked]
    assert "prompt" in win.strips and "prompt" not in win.docks
    for pid, dock in win.docks.items():
        assert isinstance(dock, QDockWidget)
        assert dock.objectName() == f"dock-{pid}"
        assert dock.features() & QDockWidget.DockWidgetClosable
        assert dock.features() & QDockWidget.DockWidgetFloatable
    titles = [a.text().replace("&&", "&") for a in win.view_menu.actions()]
    for cls in panel_classes():
        assert cls.title in titles
    win.close()


def test_window_fits_a_laptop_screen(qtbot):
    win = make_window(qtbot)
    hint = win.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 720, hint
    win.close()


def test_close_reopen_and_reset_layout(qtbot):
    win = make_window(qtbot)
    dock = win.docks["model"]
    dock.toggleViewAction().trigger()
    assert dock.isHidden()
    dock.toggleViewAction().trigger()
    assert not dock.isHidden()
    dock.close()
    win.docks["attention"].setFloating(True)
    win.strips["prompt"].hide()
    win.reset_layout()
    assert not dock.isHidden()
    assert not win.docks["attention"].isFloating()
    assert win.strips["prompt"].isVisible()
    win.close()


def test_layout_and_geometry_persist(qtbot):
    win = make_window(qtbot)
    win.resize(win.minimumSizeHint().width(), win.minimumSizeHint().height() + 41)  # offscreen screen is 800 wide
    size = win.size()
    win.docks["model"].close()
    win.close()
    win2 = make_window(qtbot)
    assert win2.docks["model"].isHidden()
    assert win2.size() == size
    win2.close()


def test_status_bar_shows_the_model_and_settings_remember_it(qtbot, tiny_gpt2, load_and_wait):
    from lab.ui import settings as lab_settings

    win = make_window(qtbot)
    load_and_wait(qtbot, win.session, tiny_gpt2)
    text = win.model_label.text()
    assert "gpt2" in text and "parameters" in text and "cpu" in text and "fp32" in text and "weights" in text
    assert lab_settings.settings().value("last_model") == str(tiny_gpt2)
    win.close()


def test_model_panel_shows_the_card_and_errors_inline(qtbot, tiny_t5, tmp_path, load_and_wait):
    win = make_window(qtbot)
    panel = win.panels["model"]
    load_and_wait(qtbot, win.session, tiny_t5)
    html = panel.card_view.toPlainText()
    assert "encoder-decoder" in html and "2 encoder + 2 decoder" in html
    with qtbot.waitSignal(win.session.error, timeout=10000):
        panel.load_ref(str(tmp_path / "nothing-here"))
    assert panel.error.isVisible() and "does not exist" in panel.error.text()
    assert win.session.card.kind == "encoder-decoder"       # the old model stays
    win.close()


def test_one_target_control_for_an_encoder_decoder(qtbot, tiny_t5, load_and_wait):
    """The target text is the user's, set in one place: the prompt strip's Target box."""
    win = make_window(qtbot)
    load_and_wait(qtbot, win.session, tiny_t5)
    targets = [e for e in win.findChildren(QLineEdit) if "target" in (e.placeholderText() + e.objectName()).lower()]
    assert [e.objectName() for e in targets] == ["target"]
    assert targets[0].isVisible()
    targets[0].setText("the book")
    assert win.session.target == "the book"
    win.close()


def test_progress_and_cancel_in_the_status_bar(qtbot):
    import time

    win = make_window(qtbot)

    def slow(lm, job):
        for i in range(400):
            job.progress(i / 400, "step")
            time.sleep(0.005)

    errors = []
    win.session.request("test.slow", slow, lambda r: None, errors.append, needs_model=False)
    qtbot.waitUntil(lambda: win.cancel_button.isVisible(), timeout=5000)
    qtbot.mouseClick(win.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not win.cancel_button.isVisible(), timeout=5000)
    assert errors and "Cancelled" in errors[0]
    win.close()


def test_dropping_a_folder_loads_it(qtbot, tiny_bert):
    win = make_window(qtbot)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_bert))])
    event = QDropEvent(QPoint(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(win.session.model_changed, timeout=30000):
        win.dropEvent(event)
    assert win.session.card.kind == "encoder-only"
    win.close()


def test_prompt_panel_recent_prompts_and_empty_note(qtbot, tiny_gpt2, load_and_wait):
    win = make_window(qtbot)
    load_and_wait(qtbot, win.session, tiny_gpt2)
    prompt = win.panels["prompt"]
    prompt.edit.setPlainText("")
    prompt.submit()
    assert prompt.note.isVisible() and "empty" in prompt.note.text()
    prompt.edit.setPlainText("Dog bites man.")
    with qtbot.waitSignal(win.session.trace_changed, timeout=10000):
        prompt.submit()
    assert prompt.recent.findData("Dog bites man.") > 0
    win.close()


def test_theme_switch(qtbot):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    win = make_window(qtbot)
    win.set_theme("dark")
    assert QApplication.instance().palette().color(QPalette.Window).lightness() < 100
    win.set_theme("light")
    assert QApplication.instance().palette().color(QPalette.Window).lightness() > 150
    win.close()


def test_model_panel_lists_devices_and_the_cache_from_the_worker(qtbot, tmp_path, monkeypatch):
    from lab.core import models
    from lab.ui.panels.model import ModelPanel
    from lab.ui.session import Session

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    session = Session()
    panel = ModelPanel(session)
    qtbot.addWidget(panel)
    assert not session.busy                        # quiet requests: no progress bar, nothing to wait on
    cache = panel.cache
    qtbot.waitUntil(lambda: cache.child(0).text(0) == "(no models in the local cache)", timeout=10000)
    qtbot.waitUntil(lambda: panel.device.count() >= len(models.available_devices()), timeout=10000)
    assert [panel.device.itemData(i) for i in range(len(panel.devices))] == models.available_devices()
    assert panel.current_device() == "cpu"
    session.shutdown()


def test_the_window_opens_no_larger_than_a_small_screen(qtbot, monkeypatch):
    """On a 1024 x 700 projector the 1400 x 900 default left the Analyse button off screen."""
    from PySide6.QtGui import QGuiApplication

    from lab.ui import main_window

    assert main_window.default_size() == main_window.DEFAULT_SIZE        # offscreen: as asked
    monkeypatch.setattr(QGuiApplication, "platformName", staticmethod(lambda: "xcb"))
    free = QGuiApplication.primaryScreen().availableGeometry()          # 800 x 800 offscreen
    size = main_window.default_size()
    assert size.width() <= free.width() and size.height() <= free.height() - main_window.TITLE_BAR
    assert size.width() == min(1400, free.width())
