"""Packaging: the sdist builds, carries what its build needs, and installs in a clean venv;
the wheel built from it ships the zoo, its scaling sweep and the resources, and the installed
lab finds them; the version is written once (lab.__version__).

Everything runs offline: the sdist is built with setuptools' PEP 517 hook (what
``python -m build --sdist`` calls), the wheel with ``pip wheel --no-build-isolation``, and
the clean venv sees the test environment's libraries through a .pth line (no download,
``--no-deps``). The source is copied first, so the checkout gets no build/ folder.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import lab

REPO = Path(__file__).resolve().parents[2]
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in", "ARCHITECTURE.md")
SOURCE_DIRS = ("lab", "resources", "packaging", "models")


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def _source_copy(dest: Path) -> Path:
    dest.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCE_DIRS:
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def test_sdist_and_wheel_build_and_the_sdist_installs_in_a_clean_venv(tmp_path):
    src = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    dist.mkdir()
    sdist_name = _run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                       "print(b.build_sdist(sys.argv[1]))", str(dist)], cwd=src).stdout.strip().splitlines()[-1]
    sdist = dist / sdist_name
    assert sdist_name == f"transformer_visual_lab-{lab.__version__}.tar.gz"
    top = sdist_name[:-len(".tar.gz")]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    for needed in ("setup.py", "packaging/payload.py", "LICENSE", "MANIFEST.in", "pyproject.toml",
                   "models/scaling_runs.csv", "models/bard-gpt/model.safetensors", "models/bard-gpt/config.json",
                   "resources/icons/tvlab.png", "lab/__init__.py"):
        assert needed in names, needed
    assert not any(n.startswith("models/training") or n.endswith(".pyc") for n in names)
    assert f"Version: {lab.__version__}" in pkg_info and "License-Expression: MIT" in pkg_info
    assert "Provides-Extra: multi-gpu" in pkg_info and "Project-URL: Homepage" in pkg_info
    assert re.search(r"Requires-Dist: torch<2\.15,>=2\.5|Requires-Dist: torch>=2\.5", pkg_info)
    assert not re.search(r"^Requires-Dist: accelerate[^;]*$", pkg_info, re.M)   # only in extras

    shutil.rmtree(src)                    # from here on, only the sdist: it must build by itself
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(sdist)])
    wheel = next(wheels.glob("*.whl"))
    assert wheel.name.startswith(f"transformer_visual_lab-{lab.__version__}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "lab/zoo/bard-gpt/config.json" in names and "lab/zoo/bard-gpt/model.safetensors" in names
    assert "lab/zoo/scaling_runs.csv" in names
    assert "lab/resources/lessons/03-self-attention.json" in names
    assert "lab/resources/icons/tvlab.png" in names and "lab/resources/known_models.csv" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("models/") or n.endswith("train.py") for n in names)
    assert "[gui_scripts]\ntvlab-gui = lab.cli:main" in entry_points and "[console_scripts]\ntvlab = lab.cli:main" in entry_points

    # A clean venv: the test environment's libraries through a .pth line, the lab from the sdist.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    outer = [p for p in sys.path if p.endswith("site-packages")]
    (site / "outer.pth").write_text("\n".join(outer) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-build-isolation",
          str(sdist)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TVLAB_ZOO", "TVLAB_LESSONS", "PYTHONPATH")}
    code = ("import json, lab, lab.core.models as m, lab.core.resources as r, lab.core.lessons as l;"
            "from lab.core.scaling import known_models as k, runs;"
            "p = k.zoo_sweep_path();"
            "print(json.dumps({'lab': lab.__file__, 'version': lab.__version__,"
            "'zoo': {n: str(v) for n, v in m.zoo_models().items()},"
            "'resources': str(r.resources_dir()), 'sweep': str(p), 'rows': len(runs.read_runs(p)),"
            "'lessons': [x.problem for x in l.load_lessons() if x.model == 'zoo:bard-gpt']}))")
    got = json.loads(_run([str(py), "-c", code], cwd=elsewhere, env=env, timeout=120).stdout)
    installed = site / "lab"
    assert got["lab"] == str(installed / "__init__.py") and got["version"] == lab.__version__
    assert got["zoo"]["bard-gpt"] == str(installed / "zoo" / "bard-gpt")
    assert got["resources"] == str(installed / "resources")
    assert got["sweep"] == str(installed / "zoo" / "scaling_runs.csv") and got["rows"] > 3
    assert got["lessons"] and all(p is None for p in got["lessons"])
    bindir = py.parent
    assert _run([str(bindir / "tvlab"), "--version"], cwd=elsewhere, env=env).stdout.strip() == f"tvlab {lab.__version__}"
    assert (bindir / "tvlab-gui").exists()
    card = json.loads(_run([str(bindir / "tvlab"), "info", "--model", "zoo:bard-gpt", "--json"],
                           cwd=elsewhere, env=env, timeout=240).stdout)
    assert card["source"] == "zoo" and card["path"].startswith(str(installed))


def test_the_version_is_written_once_and_the_build_reads_it():
    text = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "lab.__version__" }' in text
    assert not re.search(r'^version\s*=\s*"', text, re.M)
    spec = (REPO / "build_spec.spec").read_text()
    assert "lab.__version__" in spec and not re.search(r"\d+\.\d+\.\d+", spec.split("info_plist")[0].split("import lab")[1])
    assert "import lab; print(lab.__version__)" in (REPO / "Makefile").read_text()


def test_project_urls_and_the_about_box_agree():
    from lab.core.environment import HOMEPAGE

    text = (REPO / "pyproject.toml").read_text()
    assert f'Homepage = "{HOMEPAGE}"' in text
    assert f"Homepage: {HOMEPAGE}" in (REPO / "packaging" / "deb" / "control.in").read_text()


def test_bundle_spec_names_installed_distributions_and_hides_no_error():
    import ast
    import importlib.metadata

    tree = ast.parse((REPO / "build_spec.spec").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            assert node.type is not None and "Exception" not in ast.unparse(node.type), ast.unparse(node)
    names = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and t.id.endswith("_METADATA")}
    assert names["REQUIRED_METADATA"]
    for dist in names["REQUIRED_METADATA"]:
        importlib.metadata.distribution(dist)       # a misspelled name raises here
    assert "LICENSE" in (REPO / "build_spec.spec").read_text()


def test_the_constraints_pin_versions_that_pyproject_accepts():
    """make installs packaging/constraints.txt's versions: each line pins one version (on the
    Python versions it was tested with), leaves torch to the Makefile, and agrees with the
    ranges pyproject.toml declares — a lock that contradicts them would fail a fresh install."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    extras = project["optional-dependencies"]
    declared += [Requirement(r) for extra in ("test", "bundle") for r in extras[extra]]   # what make installs
    pins = {}
    for line in (REPO / "packaging" / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        assert req.marker is not None and req.marker.evaluate({"python_version": "3.11"}), line
        assert not req.marker.evaluate({"python_version": "3.10"}), line
        pins[canonicalize_name(req.name)] = spec.version
    assert "torch" not in pins and "transformer-visual-lab" not in pins
    for req in declared:
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{req.name} is declared but not in the constraints (run make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert "-c $(CONSTRAINTS)" in (REPO / "Makefile").read_text()
