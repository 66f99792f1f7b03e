"""`tvlab bench` lists and runs its model suites where PySide6 is not installed (a GPU server)."""
import subprocess
import sys


def test_bench_suites_import_without_qt():
    code = ("import sys\n"
            "class NoQt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('PySide6', 'pyqtgraph'):\n"
            "            raise ImportError('no Qt here')\n"
            "sys.meta_path.insert(0, NoQt())\n"
            "from lab.bench import suites\n"
            "print(sorted(suites()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "interventions" in out.stdout and "attention" in out.stdout
