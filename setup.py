"""Build step for `pip install .`: put the zoo and resources inside the package.

The metadata lives in pyproject.toml; this file only adds one step to build_py. The wheel
carries ``lab/zoo/<name>/`` (each models/<name>/ with a config.json: weights, tokenizer,
card) and ``lab/resources/`` (icons, lessons, tables), which lab.core.models.zoo_dirs()
and lab.core.resources look in first; packaging/payload.py chooses the files, the same
list the PyInstaller bundle uses. An editable install (-e) skips the copy: the checkout's
own models/ and resources/ are found directly.
"""
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "packaging"))
from payload import resource_files, zoo_files  # noqa: E402


class build_py_with_payload(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        out = Path(self.build_lib)
        for stale in (out / "lab" / "zoo", out / "lab" / "resources"):   # a previous build's copy
            shutil.rmtree(stale, ignore_errors=True)
        for src, dest in zoo_files(ROOT) + resource_files(ROOT):
            target = out / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


setup(cmdclass={"build_py": build_py_with_payload})
