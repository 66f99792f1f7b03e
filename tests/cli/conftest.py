import os
import subprocess
import sys

import pytest


@pytest.fixture
def tvlab(tmp_path):
    """Run `python -m lab ARGS` and return the CompletedProcess."""
    def run(*args, timeout=240):
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TVLAB_SETTINGS_DIR=str(tmp_path / "settings"))
        return subprocess.run([sys.executable, "-m", "lab", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    return run


def _one_line_error(proc):
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def one_line_error():
    """The function CompletedProcess -> its one stderr line, after checking it failed with
    exactly one line and no traceback."""
    return _one_line_error
