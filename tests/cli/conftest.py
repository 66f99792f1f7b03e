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
