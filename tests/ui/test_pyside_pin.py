"""Why PySide6 is pinned below 6.12 (pyproject.toml): on Python 3.11, 6.12.0 drops a reference to
None/True/False on every void Qt call and bool signal, until the process dies with "Fatal Python
error: none_dealloc". This test makes tens of thousands of such calls in a fresh process and
checks the counts hold; when it passes on a new PySide6, the pin can be lifted."""
import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import sys
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel

class Source(QObject):
    flag = Signal(bool)

app = QApplication([])
label, box, src = QLabel(), QCheckBox(), Source()
got = []
src.flag.connect(got.append)
src.flag.connect(box.setChecked)
before = [sys.getrefcount(o) for o in (None, True, False)]
for i in range(CALLS):
    label.setText("x")
    label.setVisible(i % 2 == 0)
    src.flag.emit(i % 2 == 0)
got.clear()
after = [sys.getrefcount(o) for o in (None, True, False)]
print(" ".join(str(a - b) for a, b in zip(after, before)))
'''
CALLS = 20000


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None/True/False are immortal from Python 3.12 on")
def test_void_qt_calls_and_bool_signals_keep_the_refcounts_of_none_true_false():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.replace("CALLS", str(CALLS))], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    drift = [int(x) for x in proc.stdout.split()]
    # A leak of one reference per call loses CALLS or more; a few dozen either way is the interpreter's own.
    assert all(d > -CALLS // 100 for d in drift), f"refcounts of None/True/False fell by {drift}"
