"""torch's native libraries open before `import torch`, and torch then works (lab.core.libraries)."""
import subprocess
import sys

import pytest

SCRIPT = r"""
import sys
from lab.core import libraries
opened = libraries.preload_torch()
assert "torch" not in sys.modules, "preloading must not import torch"
assert "libtorch_cpu.so" in opened, opened
assert libraries.preload_torch() == opened          # once per process
import torch
x = torch.arange(6.0).reshape(2, 3)
assert float((x @ x.T).sum()) == 83.0
assert libraries.preload_torch() == opened          # a no-op once torch is in
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")
def test_preloaded_libraries_serve_torchs_own_import():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_library_folder_is_found_without_importing_torch():
    from lab.core import libraries

    folder = libraries.torch_library_folder()
    assert folder is not None and folder.endswith("lib")
