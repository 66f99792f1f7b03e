"""tvlab doctor: check what a workshop machine needs, one line per check, with the fix.

Works without a display: the Qt check starts Qt's platform plugin in a child process (a
plugin that cannot start aborts its process), so the other checks still run and print.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

NAME = "doctor"
HELP = "check this machine for the lab: Qt, torch, GPUs, the zoo, writable folders, disk space"

MIN_FREE_BYTES = 2 * 2**30      # an fp32 ONNX export of a 0.5B model, plus its fp16 and int8 copies


class Check:
    """One line of the doctor's answer: ok / info / FAIL, what was seen, what to do."""

    def __init__(self, name: str, status: str, seen: str, fix: str = ""):
        self.name, self.status, self.seen, self.fix = name, status, seen, fix

    def line(self, width: int) -> str:
        text = f"{self.status:<4}  {self.name:<{width}}  {self.seen}"
        return text + (f" — {self.fix}" if self.fix and self.status == "FAIL" else "")


def add_arguments(p):
    p.add_argument("--qt-probe", action="store_true", help="(internal) start Qt's platform plugin and exit")


def _probe_command() -> list[str]:
    if getattr(sys, "frozen", False):            # the bundle's executable is tvlab itself
        return [sys.executable, "doctor", "--qt-probe"]
    return [sys.executable, "-m", "lab", "doctor", "--qt-probe"]


def check_qt() -> Check:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    try:
        proc = subprocess.run(_probe_command(), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("Qt platform", "FAIL", f"could not start a probe: {err}", "reinstall the lab")
    if proc.returncode == 0 and proc.stdout.strip():
        return Check("Qt platform", "ok", f"plugin {proc.stdout.strip().splitlines()[-1]} loads")
    said = [ln.strip() for ln in proc.stderr.splitlines() if "plugin" in ln.lower() or "display" in ln.lower()]
    seen = said[0] if said else f"Qt exited with status {proc.returncode}"
    if sys.platform.startswith("linux") and not platform and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        fix = ("no display: run it in a desktop session (or over ssh -X); the CLI commands work without one, "
               "and QT_QPA_PLATFORM=offscreen runs `tvlab selftest`")
    elif sys.platform.startswith("linux"):
        fix = ("install the libraries Qt's xcb plugin needs: sudo apt install libxcb-cursor0 libxkbcommon-x11-0 "
               "libegl1 (or try QT_QPA_PLATFORM=wayland)")
    else:
        fix = "reinstall the lab; QT_DEBUG_PLUGINS=1 tvlab shows what Qt looked for"
    return Check("Qt platform", "FAIL", seen, fix)


def check_torch() -> tuple[Check, Check]:
    try:
        import torch
    except Exception as err:   # a broken install is what this reports
        fail = Check("torch", "FAIL", f"does not import: {type(err).__name__}: {err}",
                     "reinstall: `make venv`, or pip install 'torch>=2.5' (see README)")
        return fail, Check("GPU", "FAIL", "not checked (no torch)", "fix torch first")
    from lab.core import environment

    lines = environment.gpu_lines()
    seen = any(line.startswith(("cuda:", "mps")) for line in lines)
    gpu = Check("GPU", "ok" if seen else "info", "; ".join(lines))
    if not seen and shutil.which("nvidia-smi"):
        gpu = Check("GPU", "FAIL", f"an NVIDIA driver is installed but torch sees no GPU ({lines[0]})",
                    "install torch's CUDA build: make clean venv on this machine, or pip install torch "
                    "from https://pytorch.org/get-started/locally/")
    return Check("torch", "ok", f"{torch.__version__} imports"), gpu


def check_zoo() -> Check:
    from lab.core import models
    from lab.core.errors import LabError

    zoo = models.zoo_models()
    if not zoo:
        return Check("zoo", "FAIL", "no bundled models found in " + ", ".join(map(str, models.zoo_dirs())),
                     "reinstall the lab, or train them in a checkout: python -m models.training.train gpt")
    loaded = []
    for name in zoo:
        try:
            models.load(f"zoo:{name}", "cpu", "fp32")
        except (LabError, OSError, ValueError) as err:
            return Check("zoo", "FAIL", f"zoo:{name} does not load: {err}",
                         f"reinstall the lab (the files in {zoo[name]} are damaged)")
        loaded.append(name)
    return Check("zoo", "ok", f"{len(loaded)} models load: {', '.join(loaded)}")


def _writable(folder: Path) -> str:
    """"" when a file can be created in ``folder`` (made if missing), else the error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tvlab-doctor-"):
            pass
        return ""
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"


def check_folders() -> list[Check]:
    from lab.ui import diagnostics
    from lab.ui import settings as lab_settings

    out = []
    for name, folder, env in (("settings folder", Path(lab_settings.settings().fileName()).parent, "TVLAB_SETTINGS_DIR"),
                              ("log folder", diagnostics.log_dir(), "TVLAB_LOG_DIR")):
        err = _writable(folder)
        out.append(Check(name, "FAIL", f"{folder} is not writable ({err})",
                         f"fix its permissions, or set {env} to a writable folder")
                   if err else Check(name, "ok", f"{folder} is writable"))
    return out


def check_disk(folder: Path) -> Check:
    from lab.core.units import format_bytes

    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    seen = f"{format_bytes(free)} free at {probe} (ONNX exports go to {folder})"
    if free < MIN_FREE_BYTES:
        return Check("disk space", "FAIL", seen,
                     f"free at least {format_bytes(MIN_FREE_BYTES)}, or pick another output folder in the Precision panel")
    return Check("disk space", "ok", seen)


def checks() -> list[Callable[[], object]]:
    from lab.ui.controllers.conversion import default_folder

    return [check_qt, check_torch, check_zoo, check_folders,
            lambda: check_disk(Path(default_folder("x")).parent)]


def _qt_probe() -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    print(app.platformName())
    return 0


def run(args) -> int:
    if args.qt_probe:
        return _qt_probe()
    failed = 0
    width = 15
    for check in checks():
        found = check()
        for c in (found if isinstance(found, (list, tuple)) else [found]):
            print(c.line(width), flush=True)
            failed += c.status == "FAIL"
    print(f"{failed} check{'s' if failed != 1 else ''} failed" if failed else "all checks passed")
    return 1 if failed else 0
