"""Fixtures for the GUI tests: a private settings file, a Session, panels built on it."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _gc_on_the_gui_thread(qapp):
    """As in the app: cycles holding Qt objects are freed on the GUI thread, never by a
    worker thread that happens to allocate (lab.ui.collector)."""
    from lab.ui.collector import collect_on_gui_thread

    collect_on_gui_thread(qapp)


@pytest.fixture(autouse=True)
def _settings_in_tmp(tmp_path, monkeypatch):
    """Each GUI test gets its own settings file, never the user's."""
    monkeypatch.setenv("TVLAB_SETTINGS_DIR", str(tmp_path / "settings"))


@pytest.fixture
def session(qtbot):
    from lab.ui.session import Session

    s = Session(trace_delay_ms=10)
    yield s
    s.shutdown()


@pytest.fixture
def make_panel(qtbot, session):
    """A function (panel class, size=None) -> a panel of that class on the shared
    ``session``, owned by qtbot; given a (width, height) it is resized to it and shown."""
    def build(cls, size=None):
        panel = cls(session)
        qtbot.addWidget(panel)
        if size is not None:
            panel.resize(*size)
            panel.show()
        return panel

    return build


def _load_and_wait(qtbot, session, folder, timeout=30000):
    """Load a model through the worker and wait until the session has it."""
    with qtbot.waitSignal(session.model_changed, timeout=timeout):
        session.load_model(str(folder))
    return session.card


@pytest.fixture
def load_and_wait():
    """The function (qtbot, session, folder, timeout=30000) -> card: loads through the worker."""
    return _load_and_wait


def _open_attention(qtbot, folder, prompt=None, size=(900, 700)):
    """An attention panel on a session of its own, the model loaded and, given a prompt, traced."""
    from lab.ui.panels.attention import AttentionPanel
    from lab.ui.session import Session

    session = Session(trace_delay_ms=0)
    panel = AttentionPanel(session)
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    session.load_model(str(folder))
    qtbot.waitUntil(lambda: session.card is not None, timeout=60000)
    if prompt:
        session.set_prompt(prompt, immediate=True)
        qtbot.waitUntil(panel.selftest_ready, timeout=60000)
    return session, panel


def _idle(qtbot, session):
    qtbot.waitUntil(lambda: not session.busy, timeout=60000)
    qtbot.wait(20)


@pytest.fixture
def open_attention():
    """The function (qtbot, folder, prompt=None, size=(900, 700)) -> (session, panel)."""
    return _open_attention


@pytest.fixture
def idle():
    """The function (qtbot, session): wait until the session's jobs are done."""
    return _idle
