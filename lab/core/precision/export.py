"""The fp32 ONNX export: a logits-only wrapper, the exporter's errors in one sentence, a cache.

``torch.onnx.export`` (the dynamo exporter, opset 18) of a wrapper module that returns the
logits only, with dynamic batch and sequence axes. The wrapper is in eval mode itself:
the exporter restores the training flag of the module it is given, and a fresh wrapper
is in training mode, which would silently switch dropout on in the live model afterwards.
Models over ~2 GB are saved with external data. Encoder-decoder models export as ONE
graph taking ``input_ids``, ``attention_mask`` and ``decoder_input_ids`` and returning
the decoder's logits (teacher forcing, no KV cache).
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import io
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

from lab.core import atomic
from lab.core.errors import Cancelled, InputError, first_line
from lab.core.jobs import Job
from lab.core.precision.output import _os_error

OPSET = 18
#: Above this many bytes the protobuf limit (2 GiB) is near: save with external data.
EXTERNAL_DATA_BYTES = 1_800_000_000


def _wrapper(model, kind: str):
    import torch

    class LogitsOnly(torch.nn.Module):
        """Returns the logits tensor only (no cache, no hidden states)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, decoder_input_ids=None):
            if kind == "encoder-decoder":
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                 decoder_input_ids=decoder_input_ids, use_cache=False)
            elif kind == "decoder-only":
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            else:
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return out.logits if hasattr(out, "logits") else out[0]

    w = LogitsOnly(model)
    w.eval()   # the exporter restores THIS module's flag afterwards: it must be eval
    return w


def graph_description(kind: str) -> str:
    if kind == "encoder-decoder":
        return ("one graph: input_ids, attention_mask, decoder_input_ids [batch, seq] -> logits "
                "[batch, decoder_seq, vocab] (teacher forcing, no KV cache)")
    return "one graph: input_ids, attention_mask [batch, seq] -> logits [batch, seq, vocab] (no KV cache)"


def _reference_model(lm):
    """The torch fp32 CPU model: the live one if it already is, else a copy (never moved)."""
    import torch

    from lab.core.models import device_errors

    if lm.dtype == "fp32" and str(lm.device) == "cpu":
        return lm.model, []
    with device_errors(str(lm.device)):
        ref = copy.deepcopy(lm.model).to("cpu", torch.float32).eval()
    return ref, [f"The live model is {lm.dtype} on {lm.device}; the export and the reference use an "
                 "fp32 copy on the CPU (the live model is untouched)."]


_export_cache: dict = {}     # fingerprint -> path of a kept fp32 export, oldest first
_export_cache_lock = threading.Lock()
_EXPORT_CACHE_MAX_BYTES = 300_000_000


def _fingerprint(model) -> tuple:
    """Identity of the weights: changes if any parameter is replaced or edited in place."""
    return (id(model),) + tuple((n, p.data_ptr(), p._version) for n, p in model.named_parameters())


def _dummy_inputs(lm, kind: str):
    import torch

    vocab = int(getattr(getattr(lm.model, "config", None), "vocab_size", 0) or lm.card.vocab or 100)
    g = torch.Generator().manual_seed(0)
    # batch 2 and distinct lengths, so no axis is specialised to a constant
    ids = torch.randint(0, vocab, (2, 8), generator=g)
    args = [ids, torch.ones_like(ids)]
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    names = ["input_ids", "attention_mask"]
    if kind == "encoder-decoder":
        args.append(torch.randint(0, vocab, (2, 5), generator=g))
        shapes["decoder_input_ids"] = {0: batch, 1: torch.export.Dim("decoder_sequence")}
        names.append("decoder_input_ids")
    return tuple(args), shapes, names


def export_onnx(lm, path, job: Optional[Job] = None, *, external_data: Optional[bool] = None,
                reference=None) -> None:
    """Export ``lm`` to ``path`` at fp32 (logits only, dynamic batch and sequence)."""
    import torch

    job = Job.ensure(job)
    model = reference if reference is not None else _reference_model(lm)[0]
    path = Path(path)
    if external_data is None:
        external_data = _fp32_bytes(model) > EXTERNAL_DATA_BYTES
    wrapper = _wrapper(model, lm.kind)
    args, shapes, names = _dummy_inputs(lm, lm.kind)
    flags = {name: m.training for name, m in model.named_modules()}
    sink = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, args, dynamo=True, opset_version=OPSET, dynamic_shapes=shapes,
                input_names=names, output_names=["logits"], verbose=False, report=False)
    except Cancelled:
        raise
    except Exception as err:  # the exporter's errors are long reports: say which op failed
        raise InputError(untraceable_message(err)) from None
    finally:
        for name, m in model.named_modules():   # belt and braces: the flags as they were
            if name in flags and m.training != flags[name]:
                m.train(flags[name])
    job.check()
    try:
        with contextlib.redirect_stdout(sink):
            program.save(str(path), external_data=bool(external_data))
    except OSError as err:
        raise _os_error(err, path.parent) from None


def untraceable_message(err: BaseException) -> str:
    """One sentence naming the operation the exporter could not handle."""
    texts = []
    e: Optional[BaseException] = err
    while e is not None and len(texts) < 6:
        texts.append(str(e))
        e = e.__cause__ or e.__context__
    text = "\n".join(texts)
    m = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text) or \
        re.search(r"target=torch\.ops\.([\w.]+?)(?:\.default)?\]", text)
    if m:
        return (f"The ONNX exporter cannot translate the operation {m.group(1)} used by this model "
                "(no ONNX equivalent in opset %d); the model cannot be converted." % OPSET)
    if re.search(r"data.dependent|GuardOnDataDependent|Could not guard on data-dependent", text, re.I):
        code = re.findall(r"File: (\S+?):(\d+) in \w+, code: (.+)", text)
        where = f" (at {Path(code[-1][0]).name}:{code[-1][1]}: {code[-1][2].strip()})" if code else ""
        return ("The ONNX exporter cannot trace this model: it branches on the values of a tensor "
                f"(data-dependent control flow){where}.")
    m = re.search(r"aten[.:]+(\w+)", text)
    if m:
        return f"The ONNX exporter failed on the operation aten.{m.group(1)}: {first_line(text)}"
    return f"The ONNX exporter could not trace this model: {first_line(text)}"


def _fp32_bytes(model) -> int:
    seen, total = set(), 0
    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * 4
    return total


def _copy_model(src: Path, dst: Path) -> None:
    try:
        shutil.copyfile(src, dst)
    except OSError as err:
        raise _os_error(err, dst.parent) from None


def _cached_export(key) -> Optional[Path]:
    with _export_cache_lock:
        path = _export_cache.get(key)
        if path is None or not Path(path).is_file():
            return None
        _export_cache[key] = _export_cache.pop(key)   # most recently used last
        return Path(path)


def _remember_export(key, path: Path) -> None:
    """Keep a copy of small fp32 exports so converting the same weights again skips the export."""
    with _export_cache_lock:
        old = _export_cache.pop(key, None)
        if old:
            shutil.rmtree(Path(old).parent, ignore_errors=True)
        d = Path(tempfile.mkdtemp(prefix="tvlab-export-cache-"))
        try:
            shutil.copyfile(path, d / path.name)
        except OSError:
            shutil.rmtree(d, ignore_errors=True)
            return
        _export_cache[key] = str(d / path.name)
        while len(_export_cache) > 1 and sum(Path(p).stat().st_size for p in _export_cache.values()
                                             if Path(p).exists()) > _EXPORT_CACHE_MAX_BYTES:
            oldest = next(iter(_export_cache))
            shutil.rmtree(Path(_export_cache.pop(oldest)).parent, ignore_errors=True)


def _clear_export_cache() -> None:
    with _export_cache_lock:
        for path in _export_cache.values():
            shutil.rmtree(Path(path).parent, ignore_errors=True)
        _export_cache.clear()


atexit.register(_clear_export_cache)


class SessionExport:
    """This process's kept fp32 export of the weights ``reference`` holds right now (in
    memory, keyed by their identity: an edited or replaced parameter is a new key)."""

    def __init__(self, reference, kind: str):
        self.key = _fingerprint(reference) + (kind, OPSET)

    def find(self) -> Optional[Path]:
        return _cached_export(self.key)

    def keep(self, path: Path) -> None:
        _remember_export(self.key, path)


class FolderExport:
    """An fp32 export kept as ``folder/<key>.onnx``, where ``key`` names the weights on disk:
    conversions in short-lived processes reuse it. The folder's owner removes the folder;
    the least recently used files go once they exceed the in-process cache's size."""

    def __init__(self, folder, key: str):
        self.folder, self.key = Path(folder), key

    @property
    def path(self) -> Path:
        return self.folder / f"{self.key}.onnx"

    def find(self) -> Optional[Path]:
        try:
            self._touch()
        except OSError:
            return None
        return self.path

    def _touch(self) -> None:
        """Mark as the most recently used (the clock's own resolution: files written within
        one timer tick would otherwise tie)."""
        now = time.time_ns()
        os.utime(self.path, ns=(now, now))

    def keep(self, path: Path) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic.replacing(self.path) as tmp:
                shutil.copyfile(path, tmp)
            self._touch()
            kept = sorted(self.folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime_ns)
            while len(kept) > 1 and sum(p.stat().st_size for p in kept) > _EXPORT_CACHE_MAX_BYTES:
                kept.pop(0).unlink()
        except OSError:   # a cache that cannot be written only costs the next export
            return
