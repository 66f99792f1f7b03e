"""What a bug report needs to know about this machine: library versions and the GPUs.

``versions()`` reads installed packages' metadata and imports none of them (cheap, safe on
the GUI thread); ``gpu_lines()`` asks torch, so it belongs on a worker or in the CLI.
"""
from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

import lab
from lab.core.units import format_bytes

#: The project's home (pyproject.toml's [project.urls] says the same; a test checks).
HOMEPAGE = "https://github.com/tvlab/transformer-visual-lab"

# (label, distribution name): the libraries whose versions decide how the lab behaves.
LIBRARIES = (
    ("PySide6", "PySide6_Essentials"),
    ("pyqtgraph", "pyqtgraph"),
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("tokenizers", "tokenizers"),
    ("safetensors", "safetensors"),
    ("huggingface_hub", "huggingface_hub"),
    ("onnx", "onnx"),
    ("onnxruntime", "onnxruntime"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("accelerate", "accelerate"),
)

#: The licence of the lab and of each library it ships with (Help ▸ About; the bundle carries them).
LICENCES = {
    "tvlab": "MIT",
    "PySide6": "LGPL-3.0-only",
    "pyqtgraph": "MIT",
    "torch": "BSD-3-Clause",
    "transformers": "Apache-2.0",
    "tokenizers": "Apache-2.0",
    "safetensors": "Apache-2.0",
    "huggingface_hub": "Apache-2.0",
    "onnx": "Apache-2.0",
    "onnxruntime": "MIT",
    "numpy": "BSD-3-Clause",
    "scipy": "BSD-3-Clause",
    "accelerate": "Apache-2.0",
}


def version_of(dist: str) -> str:
    """The installed version of ``dist``, or "not installed"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        if dist == "PySide6_Essentials":   # the full PySide6 wheel also provides the modules
            return version_of("PySide6")
        return "not installed"


def versions() -> dict[str, str]:
    """``{name: version}`` for the lab, Python, the OS and the libraries (no imports)."""
    out = {
        "tvlab": lab.__version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "frozen": "yes (bundle)" if getattr(sys, "frozen", False) else "no",
    }
    for label, dist in LIBRARIES:
        out[label] = version_of(dist)
    return out


def nvidia_driver() -> str:
    """The NVIDIA kernel driver's version line (Linux), or ""."""
    try:
        first = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
    except (OSError, IndexError):
        return ""
    parts = first.split()
    return next((p for p in parts if p[:1].isdigit() and "." in p), first.strip())


def gpu_lines() -> list[str]:
    """One line per accelerator torch sees (name, memory, driver), or one saying there is none."""
    import torch

    lines = []
    try:
        if torch.cuda.is_available():
            driver = nvidia_driver()
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                lines.append(f"cuda:{i} {p.name}, {format_bytes(p.total_memory)}, "
                             f"capability {p.major}.{p.minor}, CUDA {torch.version.cuda}"
                             + (f", driver {driver}" if driver else ""))
    except Exception as err:   # a broken driver is exactly what the report should say
        lines.append(f"CUDA error: {type(err).__name__}: {err}")
    try:
        if torch.backends.mps.is_available():
            lines.append("mps (Apple GPU)")
    except Exception:
        pass
    return lines or [f"no GPU seen by torch (CUDA build: {torch.version.cuda or 'no'})"]
