"""The GUI's conversion, run in a child process that loads the model from its files.

An ONNX export, its onnxruntime sessions and the quantizer leave 130-200 MB in the process
that ran them for good, and a crash in them would take that process down. The GUI
therefore converts in a short-lived child (``convert_in_child``): all of that memory goes
back to the OS when it ends, and a crash becomes one message. ``tvlab convert`` and
``lab.core.precision.convert`` stay in-process.

The protocol is plain JSON lines. The parent writes one request on the child's stdin
(reference, dtype, folder, precisions, options, the export cache folder), then "cancel"
if the user cancels; EOF (the parent died) cancels too. The child answers on stdout with
``{"progress": f, "stage": s}`` lines and one last line: ``{"report": <pickle, base64>}``,
``{"error": {"type": ..., "message": ...}}`` or ``{"cancelled": true}``. Everything else the
libraries print goes to stderr, which the parent drains and keeps the end of. The child
loads the model with ``models.load`` (which never runs code from a model folder).
"""
from __future__ import annotations

import atexit
import base64
import collections
import hashlib
import io
import json
import logging
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Optional

from lab.core.errors import Cancelled, DeviceError, InputError, LabError, ModelLoadError, first_line
from lab.core.jobs import Job
from lab.core.precision.output import DEFAULT_PRECISIONS, ConversionReport, check_output_folder, parse_precisions

#: The hidden ``tvlab`` command the child runs (not listed in ``--help``).
CHILD_COMMAND = "_convert-child"
#: Seconds a cancelled child gets to stop at its stage boundary before it is killed.
KILL_AFTER_S = 10.0
_POLL_S = 0.05
_ERRORS = {c.__name__: c for c in (LabError, ModelLoadError, InputError, DeviceError, Cancelled)}
_OPTIONS = ("threads", "eval_text", "latency_runs")

log = logging.getLogger(__name__)


def child_command() -> list[str]:
    """How to start the child: the bundle's own executable, or this Python with ``-m lab``."""
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_COMMAND]
    return [sys.executable, "-m", "lab", CHILD_COMMAND]


_cache_folder: Optional[Path] = None
_cache_lock = threading.Lock()


def session_cache_folder() -> Path:
    """This process's folder of kept fp32 exports (made on first use, removed at exit)."""
    global _cache_folder
    with _cache_lock:
        if _cache_folder is None:
            _cache_folder = Path(tempfile.mkdtemp(prefix="tvlab-export-cache-"))
            atexit.register(shutil.rmtree, _cache_folder, ignore_errors=True)
        return _cache_folder


# --- the parent ----------------------------------------------------------------------------

def convert_in_child(ref: str, dtype: str, out, precisions=DEFAULT_PRECISIONS, *, force: bool = False,
                     per_channel: bool = False, job: Optional[Job] = None, cache_folder=None,
                     kill_after_s: float = KILL_AFTER_S, **options) -> ConversionReport:
    """``precision.convert`` of the model ``ref`` loaded at ``dtype``, in a child process.

    Returns the same report; raises the same errors (InputError, ModelLoadError, ...) with
    the same message. ``job`` gets the child's progress, and its cancel stops the child at
    the next stage boundary (killed after ``kill_after_s`` seconds; the output folder is
    left as it was either way). ``options``: ``threads``, ``eval_text``, ``latency_runs``.
    """
    job = Job.ensure(job)
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option {sorted(unknown)[0]!r}")
    precisions = parse_precisions(precisions)
    out = check_output_folder(out, force)           # a quick refusal, before a process starts
    job.progress(0.0, "starting: a separate process loads the model's files")
    cache = Path(cache_folder) if cache_folder is not None else session_cache_folder()
    request = dict(ref=ref, dtype=dtype, out=str(out), precisions=list(precisions), force=bool(force),
                   per_channel=bool(per_channel), cache=str(cache), options=options)
    temps_before = set(_temp_folders(out))
    command = child_command()
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                encoding="utf-8", errors="replace", bufsize=1,
                                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except OSError as err:
        raise LabError(f"Could not start the conversion process ({command[0]}): {err.strerror or err}.") from None
    messages: queue.Queue = queue.Queue()
    tail: collections.deque = collections.deque(maxlen=40)
    readers = [threading.Thread(target=_read_messages, args=(proc.stdout, messages), daemon=True),
               threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True)]
    for t in readers:
        t.start()
    try:
        _tell(proc, json.dumps(request))
        result, killed = _follow(proc, messages, job, kill_after_s)
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:   # it answered but does not end: it has nothing left to do
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in readers:
            t.join(timeout=2.0)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
    if killed:
        for folder in set(_temp_folders(out)) - temps_before:
            shutil.rmtree(folder, ignore_errors=True)
        raise Cancelled()
    return _outcome(result, proc.returncode, list(tail), job)


def _follow(proc, messages: queue.Queue, job: Job, kill_after_s: float) -> tuple[Optional[dict], bool]:
    """Forward progress until the child's last line; cancel it when the job is cancelled.
    Returns (the last line, whether the child had to be killed)."""
    cancelled_at: Optional[float] = None
    while True:
        try:
            msg = messages.get(timeout=_POLL_S)
        except queue.Empty:
            msg = {}
        if msg is None:                              # stdout closed: the child has ended
            return None, False
        if "progress" in msg:
            if not job.cancelled:
                try:
                    job.progress(float(msg["progress"]), str(msg.get("stage", "")))
                except Cancelled:                    # cancelled just now: said below
                    pass
        elif msg:
            return msg, False
        if job.cancelled and cancelled_at is None:
            cancelled_at = time.monotonic()
            _tell(proc, "cancel")
        if cancelled_at is not None and time.monotonic() - cancelled_at > kill_after_s:
            log.warning("the conversion process did not stop %.0f s after a cancel; killed it", kill_after_s)
            proc.kill()
            return None, True


def _outcome(result: Optional[dict], status: Optional[int], tail: list[str], job: Job) -> ConversionReport:
    if result is not None and "report" in result:
        return pickle.loads(base64.b64decode(result["report"]))
    if result is not None and result.get("cancelled"):
        raise Cancelled()
    if result is not None and "error" in result:
        kind, message = result["error"].get("type"), str(result["error"].get("message", ""))
        if kind == "MemoryError":
            raise MemoryError(message)
        if kind in _ERRORS:
            raise _ERRORS[kind](message)
        log.error("internal error in the conversion process: %s\n%s", message, "\n".join(tail))
        raise LabError(f"The conversion failed with an internal error ({message}); the log has the details.")
    if job.cancelled:
        raise Cancelled()
    how = f"was killed by signal {-status}" if status is not None and status < 0 else f"exited with status {status}"
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    log.error("the conversion process %s without an answer; the end of its stderr:\n%s", how, "\n".join(tail))
    raise LabError(f"The conversion process {how} without finishing"
                   + (f" (last message: {last[:300]})." if last else ".") + " Nothing was written.")


def _tell(proc, line: str) -> None:
    try:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
    except (OSError, ValueError):   # the child has gone: its exit status says why
        pass


def _read_messages(stream, messages: queue.Queue) -> None:
    """The child's JSON lines into ``messages`` (other lines ignored), then None at its end."""
    try:
        for line in stream:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                messages.put(msg)
    except (OSError, ValueError):
        pass
    finally:
        messages.put(None)


def _keep_tail(stream, tail: collections.deque) -> None:
    """Drain the child's stderr (a full pipe would block it), keeping its last lines."""
    try:
        for line in stream:
            tail.append(line.rstrip("\n"))
    except (OSError, ValueError):
        pass


def _temp_folders(out: Path) -> list[Path]:
    """The pipeline's temporary folders next to ``out`` (``atomic.temp_folder``'s names)."""
    try:
        return [p for p in out.parent.glob(f".{out.name}.tmp-*") if p.is_dir()]
    except OSError:
        return []


# --- the child -----------------------------------------------------------------------------

def weights_key(lm, dtype: str) -> str:
    """What names the weights on disk: the folder, its weight files and config (names, sizes,
    modification times), the dtype they were loaded at, the model kind and the opset."""
    from lab.core import models
    from lab.core.precision.export import OPSET

    folder = Path(lm.card.path)
    files, _ = models.weight_files(folder)
    stats = []
    for f in sorted([*files, folder / "config.json"]):
        st = f.stat()
        stats.append([f.name, st.st_size, st.st_mtime_ns])
    text = json.dumps([str(folder), stats, dtype, lm.kind, OPSET])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _convert(request: dict, job: Job) -> ConversionReport:
    import torch

    from lab.core import models
    from lab.core.precision.export import FolderExport
    from lab.core.precision.pipeline import convert

    dtype = request["dtype"]
    # job.progress raises Cancelled once the job is cancelled: the load stops there too
    loading = Job(lambda f, s: job.progress(0.0, f"starting: loading the model's files ({s})"))
    lm = models.load(request["ref"], "cpu", dtype, job=loading)
    key = weights_key(lm, dtype)
    if dtype != "fp32":   # the same rounded weights as a copy of the live model, without a second copy
        lm.model.to(torch.float32)
        lm.dtype = "fp32"
    note = (f"The conversion ran in a separate process from the model's files ({dtype}"
            + (", fp32 copy on the CPU" if dtype != "fp32" else ", on the CPU") + "); the live model is untouched.")
    return convert(lm, request["out"], request["precisions"], force=request["force"],
                   per_channel=request["per_channel"], job=job, notes=[note],
                   export_slot=FolderExport(request["cache"], key) if request.get("cache") else None,
                   **request.get("options", {}))


def main() -> int:
    """The child: read one request, convert, answer; stdout carries the protocol only.

    It ends with ``os._exit`` once it has answered: the files are published and closed, and
    tearing down torch and onnxruntime at interpreter exit would only add seconds."""
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # whatever else prints goes to stderr
    lines = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    lock = threading.Lock()

    def send(msg: dict) -> None:
        with lock:
            try:
                answer.write(json.dumps(msg) + "\n")
                answer.flush()
            except (OSError, ValueError):   # the parent has gone; a cancel follows from stdin's EOF
                pass

    job = Job(lambda f, s: send({"progress": f, "stage": s}))
    try:
        request = json.loads(lines.readline())
    except ValueError as err:
        send({"error": {"type": "LabError", "message": f"bad request: {err}"}})
        return 2
    threading.Thread(target=_watch_parent, args=(lines, job), daemon=True).start()
    try:
        report = _convert(request, job)
        send({"report": base64.b64encode(pickle.dumps(report)).decode("ascii")})
    except Cancelled:
        send({"cancelled": True})
    except LabError as err:
        kind = next(c.__name__ for c in type(err).__mro__ if _ERRORS.get(c.__name__) is c)
        send({"error": {"type": kind, "message": str(err)}})
    except MemoryError:
        send({"error": {"type": "MemoryError", "message": "Out of memory during the conversion."}})
    except Exception as err:  # a bug: its traceback goes to stderr, which the parent logs
        traceback.print_exc()
        send({"error": {"type": "internal", "message": f"{type(err).__name__}: {first_line(err)}"}})
    sys.stderr.flush()
    os._exit(0)


def _watch_parent(lines, job: Job) -> None:
    """A "cancel" line, or the end of stdin (the parent has gone), cancels the job."""
    try:
        for line in lines:
            if line.strip() == "cancel":
                break
    except (OSError, ValueError):
        pass
    job.cancel()
