"""`pip install .` (not editable) ships the zoo and the resources, and `tvlab` finds them.

Builds the wheel from a copy of the source (so the checkout gets no build/ folder),
installs it with --no-deps into a folder of its own and runs the installed lab from
another directory, with the checkout out of reach (the copy is deleted first). A full
install into a fresh venv (`python -m venv /tmp/v && /tmp/v/bin/pip install .`) does the
same plus the dependencies; it takes minutes and is documented, not tested here.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_carries_zoo_and_resources_and_the_installed_lab_finds_them(tmp_path, tiny_gpt2):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("lab", "resources", "packaging"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    env = dict(os.environ)
    real_zoo = (REPO / "models" / "bard-gpt" / "config.json").is_file()
    if real_zoo:
        shutil.copytree(REPO / "models", src / "models", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    else:   # before the zoo is trained: build the wheel with the tiny model as bard-gpt
        (tmp_path / "zoo").mkdir()
        shutil.copytree(tiny_gpt2, tmp_path / "zoo" / "bard-gpt")
        env["TVLAB_BUILD_ZOO"] = str(tmp_path / "zoo")
    wheels = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(wheels), str(src)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(wheels.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lab/zoo/bard-gpt/config.json" in names and "lab/zoo/bard-gpt/model.safetensors" in names
    assert "lab/resources/lessons/03-self-attention.json" in names
    assert "lab/resources/icons/tvlab.png" in names and "lab/resources/known_models.csv" in names
    assert not any(n.startswith("models/") or n.endswith("train.py") for n in names)

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shutil.rmtree(src)
    run_env = {k: v for k, v in os.environ.items() if k not in ("TVLAB_ZOO", "TVLAB_LESSONS")}
    run_env["PYTHONPATH"] = str(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import json, lab, lab.core.models as m, lab.core.resources as r, lab.core.lessons as l;"
            "print(json.dumps({'lab': lab.__file__, 'zoo': {k: str(v) for k, v in m.zoo_models().items()},"
            "'resources': str(r.resources_dir()),"
            "'lessons': [x.problem for x in l.load_lessons() if x.model == 'zoo:bard-gpt']}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=run_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["lab"].startswith(str(site))
    assert got["zoo"]["bard-gpt"] == str(site / "lab" / "zoo" / "bard-gpt")
    assert got["resources"] == str(site / "lab" / "resources")
    assert got["lessons"] and all(p is None for p in got["lessons"])
    proc = subprocess.run([sys.executable, "-m", "lab", "info", "--model", "zoo:bard-gpt", "--json"],
                          cwd=elsewhere, env=run_env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads(proc.stdout)
    assert card["source"] == "zoo" and card["path"].startswith(str(site))
