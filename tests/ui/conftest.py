import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest


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
