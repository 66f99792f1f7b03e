"""Devices: which exist, what to call them, choosing one, their memory, and their failures.

Every function imports torch lazily: importing this module is cheap.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from lab.core.errors import DeviceError, InputError
from lab.core.units import format_bytes

DTYPES = ("fp32", "fp16", "bf16")
# Device value meaning: spread the model over every visible GPU (and the CPU if told),
# with Hugging Face accelerate's big-model inference (device_map="auto").
SPLIT = "split"


def available_devices() -> list[str]:
    """Devices detected at start: cpu, each CUDA GPU, Apple MPS."""
    import torch

    devs = ["cpu"]
    try:
        if torch.cuda.is_available():
            devs += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    try:
        if torch.backends.mps.is_available():
            devs.append("mps")
    except Exception:
        pass
    return devs


def device_label(dev: str) -> str:
    if dev.startswith("cuda"):
        import torch

        try:
            i = int(dev.split(":")[1]) if ":" in dev else 0
            props = torch.cuda.get_device_properties(i)
            return f"{dev} — {props.name} ({format_bytes(props.total_memory)})"
        except Exception:
            return dev
    return {"cpu": "cpu — processor", "mps": "mps — Apple GPU"}.get(dev, dev)


def choose_device(requested: str, dtype: str, available: Optional[list[str]] = None) -> tuple[str, list[str]]:
    """The device to use and notes for the user (fallbacks, slow combinations).
    ``available``: the devices already detected (default: detect them now, with torch)."""
    notes = []
    requested = (requested or "cpu").strip().lower()
    avail = available if available is not None else available_devices()
    if requested == "cuda":
        requested = "cuda:0"
    if requested == "auto":
        requested = next((d for d in avail if d != "cpu"), "cpu")
    if requested == SPLIT:
        if not any(d.startswith("cuda") for d in avail):
            notes.append("Splitting across GPUs needs CUDA GPUs; none here, so the model goes on the CPU.")
            requested = "cpu"
        elif dtype not in DTYPES:
            raise InputError(f"Unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}.")
        else:
            return SPLIT, notes
    if requested not in avail:
        if requested.startswith(("cuda", "mps")):
            notes.append(f"{requested} is not available on this machine; using the CPU instead.")
            requested = "cpu"
        else:
            raise InputError(f"Unknown device {requested!r}; choose one of: {', '.join(avail)}.")
    if dtype not in DTYPES:
        raise InputError(f"Unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}.")
    if requested == "cpu" and dtype == "fp16":
        notes.append("fp16 on the CPU works but is slow (few CPU kernels for half precision); fp32 or bf16 suit the CPU better.")
    if requested == "mps" and dtype == "bf16":
        notes.append("bf16 needs a recent macOS on MPS; fp16 or fp32 are safer there.")
    return requested, notes


def gpu_memory() -> list[tuple[str, int, int, int]]:
    """``[(device, bytes in use, peak bytes, total bytes)]`` for each CUDA GPU (empty without)."""
    import torch

    out = []
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                out.append((f"cuda:{i}", int(torch.cuda.memory_allocated(i)),
                            int(torch.cuda.max_memory_allocated(i)),
                            int(torch.cuda.get_device_properties(i).total_memory)))
    except Exception:   # a driver that went away must not take the status bar down
        return []
    return out


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


@contextlib.contextmanager
def device_errors(device: str = "") -> Iterator[None]:
    """Turn out-of-memory and driver failures into a DeviceError the user can act on."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as err:
        _free_device_memory()
        raise DeviceError(_oom_message(device, str(err))) from None
    except RuntimeError as err:
        text = str(err)
        if "out of memory" in text.lower():
            _free_device_memory()
            raise DeviceError(_oom_message(device, text)) from None
        if "CUDA error" in text or "device-side assert" in text or "no CUDA GPUs" in text:
            raise DeviceError(f"The device {device or 'GPU'} failed ({text.splitlines()[0]}); try again or switch to the CPU.") from None
        raise


def _oom_message(device: str, text: str) -> str:
    import re

    need = re.search(r"Tried to allocate ([\d.]+ [KMGT]?i?B)", text)
    needed = f" (it needed {need.group(1)} more)" if need else ""
    return (
        f"Out of memory on {device or 'the device'}{needed}. Try a smaller dtype (fp16/bf16), "
        "a shorter input, or fewer captured layers; the loaded model is still usable."
    )


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc's malloc_trim; elsewhere nothing to do):
    after a model is replaced, or before measuring a session's memory. The ctypes call
    releases the interpreter lock while it runs.

    No ``gc.collect()`` here: this runs on worker threads, and a collection there can free a
    cycle holding Qt objects off the GUI thread and deadlock (the GUI thread collects)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc (musl has no malloc_trim)
        pass


def _free_device_memory() -> None:
    """Give the failed step's cached blocks back to the driver. No ``gc.collect()``: this runs
    on a worker thread, where a collection can free Qt objects off the GUI thread (see
    lab.ui.collector); the blocks stay reusable by this process either way."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def device_memory() -> list[tuple[str, float]]:
    """``[(label, bytes)]``: each CUDA GPU's memory, then the system RAM (always last)."""
    import psutil

    out = []
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                out.append((f"cuda:{i} {props.name}", float(props.total_memory)))
    except Exception:  # no torch CUDA build or a broken driver: no GPU to offer
        pass
    out.append(("CPU (system RAM)", float(psutil.virtual_memory().total)))
    return out


def parse_max_memory(text: str) -> dict:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` -> accelerate's max_memory dict."""
    out: dict = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise InputError(f"--max-memory entries look like 0=20GiB or cpu=64GiB, not {part!r}.")
        key = key.strip()
        out[int(key) if key.isdigit() else key] = value.strip()
    return out
