"""lab.core must stay Qt-free: importing every core module (subpackages included) must not pull in
PySide6 or pyqtgraph."""
import json
import pkgutil
import subprocess
import sys

import lab.core

SCRIPT = r"""
import importlib, json, pkgutil, sys
import lab.core
names = [m.name for m in pkgutil.walk_packages(lab.core.__path__, "lab.core.")]
for n in names:
    importlib.import_module(n)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6"))
print(json.dumps({"modules": names, "qt": bad}))
"""


def test_core_imports_no_qt():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {m.name for m in pkgutil.walk_packages(lab.core.__path__, "lab.core.")}
    assert set(report["modules"]) == expected and {"lab.core.trace", "lab.core.trace.forward"} <= expected
    assert report["qt"] == [], f"lab.core imported Qt modules: {report['qt']}"
