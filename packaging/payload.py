"""What ships beside the code: the zoo's model files and the resources folder.

One list for both installers, so the wheel (setup.py) and the PyInstaller bundle
(build_spec.spec) carry the same files:

    lab/zoo/<name>/...      every models/<name>/ folder that holds a config.json
                            (top-level files only: weights, tokenizer, card; no training
                            checkpoints, optimizer state or scripts)
    lab/zoo/scaling_runs.csv  the zoo's scaling sweep (Scaling ▸ Your runs ▸ zoo sweep)
    lab/resources/...       the repository's resources/ folder

At run time lab.core.models.zoo_dirs() and lab.core.resources look in lab/zoo and
lab/resources first, then fall back to the repository's models/ and resources/.
"""
from __future__ import annotations

import os
from pathlib import Path

# Files a training run leaves beside the weights that a user never needs.
SKIP_SUFFIXES = {".py", ".pyc", ".pt", ".pth", ".ckpt", ".log", ".lock", ".tmp"}
SKIP_NAMES = {"training_args.bin", "optimizer.bin", "scheduler.bin", ".DS_Store"}
SWEEP_NAME = "scaling_runs.csv"


def zoo_files(root: Path) -> list[tuple[Path, str]]:
    """(source file, destination relative to the package root) for the zoo's models."""
    out = []
    # TVLAB_BUILD_ZOO: build with the model folders of another directory (tests, a custom zoo).
    models = Path(os.environ["TVLAB_BUILD_ZOO"]) if os.environ.get("TVLAB_BUILD_ZOO") else root / "models"
    if not models.is_dir():
        return out
    for folder in sorted(models.iterdir()):
        if not (folder / "config.json").is_file():
            continue
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix not in SKIP_SUFFIXES and f.name not in SKIP_NAMES \
                    and not f.name.startswith("."):
                out.append((f, f"lab/zoo/{folder.name}/{f.name}"))
    sweep = models / SWEEP_NAME
    if sweep.is_file():
        out.append((sweep, f"lab/zoo/{SWEEP_NAME}"))
    return out


def resource_files(root: Path) -> list[tuple[Path, str]]:
    """(source file, destination relative to the package root) for resources/."""
    res = root / "resources"
    if not res.is_dir():
        return []
    return [(f, "lab/resources/" + f.relative_to(res).as_posix())
            for f in sorted(res.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts and not f.name.startswith(".")]


def zoo_names(root: Path) -> list[str]:
    return sorted({dest.split("/")[2] for _, dest in zoo_files(root) if dest.count("/") == 3})
