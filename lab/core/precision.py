"""Export the loaded model to ONNX at fp32, derive fp16 / int8 / int4, and measure each.

Pipeline (each stage reports progress and can be cancelled):

1. **export**: ``torch.onnx.export`` (the dynamo exporter, opset 18) of a wrapper module
   that returns the logits only, with dynamic batch and sequence axes. The wrapper is in
   eval mode itself: the exporter restores the training flag of the module it is given,
   and a fresh wrapper is in training mode, which would silently switch dropout on in the
   live model afterwards. Models over ~2 GB are saved with external data.
2. **convert**: fp16 with ``onnxruntime.transformers.float16`` (inputs and outputs stay
   fp32; LayerNormalization, Softmax, Pow, ReduceMean and the other ops in
   ``FP16_KEEP_FP32_OPS`` stay fp32 because they overflow or lose too much in fp16).
3. **quantize**: int8 with ``onnxruntime.quantization.quantize_dynamic`` (weights of
   MatMul, and of Gemm after rewriting it to MatMul + Add, because the dynamic quantizer
   has no Gemm kernel; the token-embedding Gather too, so a tied embedding/unembedding
   does not stay fp32), optionally per channel; int4 weight-only with ``MatMulNBits``.
4. **verify**: every file is run with onnxruntime on a fixed evaluation text and compared
   with the torch fp32 model: logit differences, top-1 agreement, KL, perplexity,
   NaN/inf counts, plus file size, parameter bytes, session memory and latency.

Encoder-decoder models export as ONE graph taking ``input_ids``, ``attention_mask`` and
``decoder_input_ids`` and returning the decoder's logits (teacher forcing, no KV cache):
the readout compares whole-sequence logits, which one graph gives directly.

Everything is written into a temporary folder next to the output folder and renamed into
place at the end, so the output folder holds complete files or nothing.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import errno
import io
import json
import math
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lab.core.errors import Cancelled, InputError, LabError
from lab.core.jobs import Job

PRECISIONS = ("fp32", "fp16", "int8", "int4")
DEFAULT_PRECISIONS = ("fp32", "fp16", "int8")
OPSET = 18
#: Above this many bytes the protobuf limit (2 GiB) is near: save with external data.
EXTERNAL_DATA_BYTES = 1_800_000_000

#: Ops kept in fp32 in the fp16 model: they overflow (Pow, ReduceMean of squares, Exp) or
#: lose too much precision (normalisations, Softmax) in half precision.
FP16_KEEP_FP32_OPS = (
    "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "RMSNormalization", "Softmax", "LogSoftmax",
    "Pow", "ReduceMean", "ReduceSum", "ReduceSumSquare", "Sqrt", "Reciprocal", "Exp", "Log",
)
INT8_OPS = ("MatMul", "Gemm", "Gather")

#: The fixed evaluation text (public domain: Twelfth Night, I.1, a play the bard models
#: never see in training). Truncated to the model's context.
EVAL_TEXT = (
    "If music be the food of love, play on; Give me excess of it, that, surfeiting, "
    "The appetite may sicken, and so die. That strain again! it had a dying fall: "
    "O, it came o'er my ear like the sweet sound, That breathes upon a bank of violets, "
    "Stealing and giving odour! Enough; no more: 'Tis not so sweet now as it was before. "
    "O spirit of love! how quick and fresh art thou, That, notwithstanding thy capacity "
    "Receiveth as the sea, nought enters there, Of what validity and pitch soe'er, "
    "But falls into abatement and low price, Even in a minute: so full of shapes is fancy "
    "That it alone is high fantastical."
)
EVAL_MAX_TOKENS = 128
LATENCY_RUNS = 10
LATENCY_BUDGET_S = 10.0   # stop timing early (at least 3 runs) on a slow machine

FILE_NAME = "model-{precision}.onnx"
REPORT_NAME = "report.json"
_OUR_FILES = re.compile(r"^(model-(fp32|fp16|int8|int4)\.onnx(\.data)?|report\.json)$")


# --- the readout -------------------------------------------------------------------------

@dataclass
class PrecisionRow:
    precision: str
    file: str = ""
    file_bytes: Optional[int] = None          # model file + its external data, on disk
    param_bytes: Optional[int] = None         # bytes of all initializers (weights, scales, ...)
    bytes_by_dtype: dict = field(default_factory=dict)   # initializer bytes per element type
    fp32_tensors: list = field(default_factory=list)     # the largest tensors that stay fp32
    runtime_bytes: Optional[int] = None       # resident memory added by session + one run
    latency_ms_median: Optional[float] = None
    latency_ms_p95: Optional[float] = None
    max_abs_logit_diff: Optional[float] = None
    mean_abs_logit_diff: Optional[float] = None
    top1_agreement: Optional[float] = None    # fraction of positions with the same argmax
    kl: Optional[float] = None                # mean KL(torch || onnx) of next-token dists, nats
    perplexity: Optional[float] = None
    perplexity_change: Optional[float] = None  # onnx - torch
    nan_count: Optional[int] = None
    inf_count: Optional[int] = None
    size_ratio: Optional[float] = None        # file_bytes / fp32 file_bytes
    latency_ratio: Optional[float] = None     # median latency / fp32 median latency
    notes: list = field(default_factory=list)
    error: Optional[str] = None               # set when this precision could not be made


@dataclass
class ConversionReport:
    model: str
    kind: str
    out: str
    graph: str                                # what the graph takes and returns
    opset: int
    provider: str
    threads: int
    eval_text: str
    eval_tokens: int                          # tokens of the (encoder) input
    perplexity_torch: Optional[float]
    rows: list
    timings_s: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    per_channel: bool = False

    def row(self, precision: str) -> Optional[PrecisionRow]:
        return next((r for r in self.rows if r.precision == precision), None)

    def to_json(self) -> dict:
        d = asdict(self)
        return _finite(d)


def _finite(obj):
    """JSON has no NaN/inf: write them as null (the counts say what happened)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


# --- the output folder -------------------------------------------------------------------

def parse_precisions(spec) -> tuple[str, ...]:
    """``"fp32,fp16,int8"`` or a list -> a tuple in the canonical order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [str(p).strip().lower() for p in items if str(p).strip()]
    bad = [p for p in names if p not in PRECISIONS]
    if bad:
        raise InputError(f"Unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}.")
    if not names:
        raise InputError(f"Choose at least one precision ({', '.join(PRECISIONS)}).")
    return tuple(p for p in PRECISIONS if p in names)


def check_output_folder(out, force: bool = False) -> Path:
    """Refuse a folder that is a file, holds files (unless force) or cannot be created."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder: choose a folder for the ONNX files.")
    if out.is_dir():
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as err:
            raise InputError(f"Cannot read the folder {out}: {err.strerror or err}.") from None
        if entries and not force:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise InputError(
                f"{out} already holds {len(entries)} file{'s' if len(entries) != 1 else ''} ({shown}); "
                "choose an empty folder, or replace them with force (--force).")
    parent = out.parent
    for p in [parent, *parent.parents]:
        if p.exists():
            if not p.is_dir():
                raise InputError(f"Cannot create {out}: {p} is a file, not a folder.")
            break
    return out


def _make_temp_folder(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        os.chmod(tmp, 0o755)   # mkdtemp makes it private; the published folder should not be
        return tmp
    except PermissionError:
        raise InputError(f"Cannot write to {out.parent}: permission denied; choose another output folder.") from None
    except OSError as err:
        raise _os_error(err, out) from None


def _os_error(err: OSError, out: Path) -> LabError:
    if err.errno == errno.ENOSPC:
        return InputError(f"The disk holding {out} is full; free some space or choose another output folder.")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(f"Cannot write to {out}: {err.strerror}; choose another output folder.")
    return InputError(f"Cannot write to {out}: {err.strerror or err}.")


def _check_free_space(out: Path, need: float) -> None:
    try:
        free = shutil.disk_usage(out.parent if out.parent.exists() else _existing_parent(out)).free
    except OSError:
        return
    if free < need:
        raise InputError(
            f"Not enough free space for the ONNX files in {out.parent}: they need about "
            f"{need / 1e6:,.0f} MB and the disk has {free / 1e6:,.0f} MB free.")


def _existing_parent(p: Path) -> Path:
    for q in p.parents:
        if q.exists():
            return q
    return Path(".")


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished files into ``out``: a rename of the folder, or file by file."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        os.rename(tmp, out)
        return
    if not force:  # a file appeared while we worked
        raise InputError(f"{out} filled with other files during the conversion; nothing was replaced.")
    new = {p.name for p in tmp.iterdir()}
    for old in out.iterdir():   # earlier results of ours that this run does not replace
        if _OUR_FILES.match(old.name) and old.name not in new and old.is_file():
            old.unlink()
    for name in sorted(new, key=lambda n: n == REPORT_NAME):   # the report last
        os.replace(tmp / name, out / name)
    tmp.rmdir()


# --- export --------------------------------------------------------------------------------

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
        return f"The ONNX exporter failed on the operation aten.{m.group(1)}: {_first_line(text)}"
    return f"The ONNX exporter could not trace this model: {_first_line(text)}"


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line:
            return line[:300]
    return "unknown error"


def _fp32_bytes(model) -> int:
    seen, total = set(), 0
    for p in list(model.parameters()) + list(model.buffers()):
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel() * 4
    return total


# --- convert and quantize --------------------------------------------------------------------

def _load(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=True)


def _save(model, path: Path, external: bool) -> None:
    import onnx

    try:
        if external:
            onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + ".data", size_threshold=1024)
        else:
            onnx.save_model(model, str(path))
    except OSError as err:
        raise _os_error(err, path.parent) from None


def to_fp16(src: Path, dst: Path, *, external: bool = False) -> None:
    """fp16 weights and compute; inputs, outputs and the fragile ops stay fp32."""
    from onnxruntime.transformers import float16

    model = _load(src)
    blocked = list(dict.fromkeys(list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FP32_OPS)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model16 = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=blocked, disable_shape_infer=external)
    dedupe_nodes(model16)
    _save(model16, dst, external)


def dedupe_nodes(model) -> int:
    """Drop exact duplicate nodes and rename clashing ones, in place; returns how many.

    onnxruntime 1.30's float16 converter inserts one Cast per use of a blocked-op weight,
    all with the same name and output (seen on an H200 machine): the graph then fails to
    load ("two nodes with same node name"). Identical copies are dropped; a different
    node that only shares a name is renamed.
    """
    seen: dict = {}
    keep, changed = [], 0
    for node in model.graph.node:
        if node.name and node.name in seen:
            changed += 1
            if node.SerializeToString() == seen[node.name]:
                continue
            base, i = node.name, 1
            while f"{base}_{i}" in seen:
                i += 1
            node.name = f"{base}_{i}"
        if node.name:
            seen[node.name] = node.SerializeToString()
        keep.append(node)
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return changed


def gemm_to_matmul(model) -> int:
    """Rewrite Gemm (alpha=beta=1, no transA) as MatMul + Add, in place; returns how many.

    onnxruntime's dynamic quantizer and MatMulNBits handle MatMul only; the exporter writes
    GPT-2's Conv1D layers as Gemm, which would otherwise stay fp32.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    users: dict = {}
    for n in model.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    new_nodes, count = [], 0
    for node in model.graph.node:
        if node.op_type != "Gemm":
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            new_nodes.append(node)
            continue
        a, b = node.input[0], node.input[1]
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if attrs.get("transB", 0):
            if b not in inits or users.get(b, 0) != 1:
                new_nodes.append(node)
                continue
            arr = numpy_helper.to_array(inits[b]).T.copy()
            inits[b].CopyFrom(numpy_helper.from_array(arr, b))
        out = node.output[0]
        mm_out = out + "_matmul" if c else out
        new_nodes.append(helper.make_node("MatMul", [a, b], [mm_out], name=(node.name or out) + "_MatMul"))
        if c:
            new_nodes.append(helper.make_node("Add", [mm_out, c], [out], name=(node.name or out) + "_Add"))
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
    return count


def fold_weight_transposes(model) -> int:
    """Replace Transpose(initializer) by a transposed initializer, in place; returns how many.

    A tied embedding reaches the output projection as Transpose(wte) -> MatMul; folded, the
    projection gets its own weight that the quantizers can store in int8/int4 (otherwise
    it would be dequantized and transposed on every run). Costs one extra copy of that
    weight, at the quantized width.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    keep, renames = [], {}
    for node in model.graph.node:
        if node.op_type == "Transpose" and node.input[0] in inits and len(node.output) == 1:
            arr = numpy_helper.to_array(inits[node.input[0]])
            perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
            if arr.ndim == 2 and (perm is None or list(perm) == [1, 0]):
                name = node.input[0] + "_transposed"
                if name not in inits:
                    t = numpy_helper.from_array(np.ascontiguousarray(arr.T), name)
                    model.graph.initializer.append(t)
                    inits[name] = t
                renames[node.output[0]] = name
                continue
        keep.append(node)
    if not renames:
        return 0
    for node in keep:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    for out in model.graph.output:
        if out.name in renames:   # a graph output cannot be renamed: keep an Identity
            keep.append(helper.make_node("Identity", [renames[out.name]], [out.name]))
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return len(renames)


def to_int8(src: Path, dst: Path, scratch: Path, *, per_channel: bool = False, external: bool = False) -> None:
    """Dynamic int8: weights of MatMul (Gemm rewritten) and Gather stored int8 with scales."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _load(src)
    gemm_to_matmul(model)
    fold_weight_transposes(model)
    _save(model, scratch, external)
    del model
    with _quiet():
        quantize_dynamic(str(scratch), str(dst), op_types_to_quantize=list(INT8_OPS), per_channel=per_channel,
                         weight_type=QuantType.QInt8, use_external_data_format=external,
                         extra_options={"MatMulConstBOnly": True})
    _remove_model(scratch)


def to_int4(src: Path, dst: Path, *, block_size: int = 32, external: bool = False) -> None:
    """int4 weight-only (MatMulNBits, blocks of ``block_size`` along K, symmetric)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    model = _load(src)
    gemm_to_matmul(model)
    fold_weight_transposes(model)
    cfg = nbits.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True,
                                             op_types_to_quantize=("MatMul", "Gather"))
    with _quiet():
        q = nbits.MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=True, algo_config=cfg)
        q.process()
    _save(q.model.model, dst, external)


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantizers print and log advice; keep stdout clean for --json."""
    import logging

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _remove_model(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".data")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# --- measuring -------------------------------------------------------------------------------

def onnx_sizes(path: Path) -> dict:
    """File bytes (model + external data) and initializer bytes, total and per element type."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    files = {path}
    by_dtype: dict = {}
    tensors = []
    for t in model.graph.initializer:
        dt = helper.tensor_dtype_to_np_dtype(t.data_type)
        numel = int(np.prod(t.dims)) if len(t.dims) else 1
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            files.add(path.parent / info["location"])
            nbytes = int(info.get("length", numel * dt.itemsize))
        elif t.raw_data:
            nbytes = len(t.raw_data)
        else:
            nbytes = numel * dt.itemsize
        name = _dtype_name(t.data_type)
        by_dtype[name] = by_dtype.get(name, 0) + nbytes
        tensors.append((nbytes, t.name, name))
    tensors.sort(reverse=True)
    fp32 = [dict(name=n, bytes=b) for b, n, d in tensors if d == "float32"][:6]
    return dict(file_bytes=sum(f.stat().st_size for f in files if f.exists()),
                param_bytes=sum(by_dtype.values()), bytes_by_dtype=by_dtype, fp32_tensors=fp32)


def _dtype_name(code: int) -> str:
    from onnx import TensorProto

    return {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16",
            TensorProto.INT8: "int8", TensorProto.UINT8: "uint8", TensorProto.INT4: "int4",
            TensorProto.UINT4: "uint4", TensorProto.INT64: "int64", TensorProto.INT32: "int32",
            TensorProto.BOOL: "bool", TensorProto.DOUBLE: "float64"}.get(code, str(code))


def providers() -> tuple[list[str], str]:
    """onnxruntime providers to use (CUDA when present) and a plain sentence about them."""
    import onnxruntime as ort

    avail = ort.get_available_providers()
    if "CUDAExecutionProvider" in avail:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "onnxruntime CUDA provider (GPU)"
    return ["CPUExecutionProvider"], "onnxruntime CPU provider (no CUDA provider here)"


def default_threads() -> int:
    import psutil

    return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass
class EvalInputs:
    feed: dict                      # numpy inputs of the graph, batch 1
    labels: Optional[np.ndarray]    # next-token targets per logit position (None: no perplexity)
    tokens: int


def eval_inputs(lm, text: str = EVAL_TEXT, max_tokens: int = EVAL_MAX_TOKENS, reference=None) -> EvalInputs:
    """The fixed input. Encoder-decoders are teacher-forced on the torch model's own greedy
    output for the text (what the model would write), so the decoder sees realistic states."""
    tok = lm.tokenizer
    limit = min(max_tokens, lm.card.context or max_tokens)
    ids = list(tok(text, add_special_tokens=True)["input_ids"])[:limit]
    if len(ids) < 2:
        raise InputError("The evaluation text is too short for this tokenizer (fewer than 2 tokens).")
    arr = np.asarray([ids], dtype=np.int64)
    feed = {"input_ids": arr, "attention_mask": np.ones_like(arr)}
    labels = None
    if lm.kind == "decoder-only":
        labels = arr[0, 1:]
    elif lm.kind == "encoder-decoder":
        cfg = lm.model.config
        start = getattr(cfg, "decoder_start_token_id", None)
        if start is None:
            start = getattr(cfg, "pad_token_id", 0) or 0
        target = _greedy_target(reference if reference is not None else lm.model, arr, start)
        if target is None or len(target) < 2:   # nothing generated: copy the input instead
            target = arr[0]
        feed["decoder_input_ids"] = np.asarray([[start, *target[:-1]]], dtype=np.int64)
        labels = np.asarray(target, dtype=np.int64)
    return EvalInputs(feed=feed, labels=labels, tokens=len(ids))


def _greedy_target(model, ids: np.ndarray, start: int, max_new: int = 32):
    import torch

    try:
        with torch.no_grad():
            out = model.generate(input_ids=torch.from_numpy(ids), attention_mask=torch.ones_like(torch.from_numpy(ids)),
                                 do_sample=False, max_new_tokens=max_new, num_beams=1)
    except Exception:  # a model without generate(): fall back to copying the input
        return None
    seq = out[0].tolist()
    if seq and seq[0] == start:
        seq = seq[1:]
    return seq


def torch_logits(model, kind: str, inputs: EvalInputs) -> np.ndarray:
    import torch

    wrapper = _wrapper(model, kind)
    with torch.no_grad():
        args = [torch.from_numpy(inputs.feed[k]) for k in ("input_ids", "attention_mask")]
        if kind == "encoder-decoder":
            args.append(torch.from_numpy(inputs.feed["decoder_input_ids"]))
        return wrapper(*args)[0].float().numpy()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def perplexity(logits: np.ndarray, labels: Optional[np.ndarray], kind: str) -> Optional[float]:
    """exp(mean cross-entropy); for decoders position t predicts token t+1."""
    if labels is None:
        return None
    lp = _log_softmax(logits[:-1] if kind == "decoder-only" else logits)
    nll = -lp[np.arange(len(labels)), labels]
    return float(np.exp(nll.mean()))


def fidelity(ref: np.ndarray, got: np.ndarray, labels, kind: str) -> dict:
    """Compare ONNX logits ``got[pos, vocab]`` with torch's ``ref``; NaN/inf are counted."""
    nan = int(np.isnan(got).sum())
    inf = int(np.isinf(got).sum())
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    finite = np.isfinite(diff)
    out = dict(nan_count=nan, inf_count=inf,
               max_abs_logit_diff=float(diff.max()) if finite.all() else float("inf"),
               mean_abs_logit_diff=float(diff[finite].mean()) if finite.any() else None,
               top1_agreement=float((np.argmax(np.nan_to_num(got, nan=-np.inf), -1) == ref.argmax(-1)).mean()))
    with np.errstate(all="ignore"):
        lp, lq = _log_softmax(ref), _log_softmax(got)
        kl = (np.exp(lp) * (lp - lq)).sum(-1).mean()
        out["kl"] = max(0.0, float(kl)) if np.isfinite(kl) else None   # rounding can dip below 0
        out["perplexity"] = perplexity(got, labels, kind)
    return out


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc), so the next RSS delta is the session's own."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(path: Path, inputs: EvalInputs, *, threads: int, provider_list: list[str],
            runs: int = LATENCY_RUNS, job: Optional[Job] = None) -> tuple[np.ndarray, dict]:
    """Run ``path`` with onnxruntime: logits[pos, vocab], session memory and latency."""
    import onnxruntime as ort

    job = Job.ensure(job)
    _trim_heap()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    before = _rss()
    sess = ort.InferenceSession(str(path), opts, providers=provider_list)
    feed = {i.name: inputs.feed[i.name] for i in sess.get_inputs()}
    logits = sess.run(None, feed)[0]
    runtime = max(0, _rss() - before)
    times = []
    deadline = time.perf_counter() + LATENCY_BUDGET_S
    for i in range(runs + 1):
        t = time.perf_counter()
        sess.run(None, feed)
        if i:   # the first timed run is a warm-up
            times.append((time.perf_counter() - t) * 1000)
        job.check()
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    del sess
    _trim_heap()
    times.sort()
    p95 = times[min(len(times) - 1, int(math.ceil(0.95 * len(times))) - 1)]
    return logits[0].astype(np.float32), dict(runtime_bytes=runtime,
                                              latency_ms_median=float(statistics.median(times)),
                                              latency_ms_p95=float(p95), latency_runs=len(times))


# --- the whole conversion ---------------------------------------------------------------------

_STAGES = {"export": (0.0, 0.45), "convert": (0.45, 0.55), "quantize": (0.55, 0.7), "verify": (0.7, 1.0)}


def _step(job: Job, stage: str, within: float, what: str) -> None:
    lo, hi = _STAGES[stage]
    job.progress(lo + (hi - lo) * within, f"{stage}: {what}")


def convert(lm, out, precisions=DEFAULT_PRECISIONS, *, force: bool = False, per_channel: bool = False,
            threads: Optional[int] = None, eval_text: str = EVAL_TEXT, latency_runs: int = LATENCY_RUNS,
            reuse_export: bool = True, job: Optional[Job] = None) -> ConversionReport:
    """Export ``lm`` at each precision into ``out`` and measure every file.

    Writes ``out/model-<precision>.onnx`` (+ ``.data`` for external data) and
    ``out/report.json``. Raises InputError for a folder that cannot be used (or holds
    files, unless ``force``) and for a model the exporter cannot trace; Cancelled leaves
    the folder as it was.
    """
    job = Job.ensure(job)
    precisions = parse_precisions(precisions)
    out = check_output_folder(out, force)
    threads = int(threads or default_threads())
    provider_list, provider_text = providers()
    reference, notes = _reference_model(lm)
    fp32_bytes = _fp32_bytes(reference)
    external = fp32_bytes > EXTERNAL_DATA_BYTES
    need = fp32_bytes * (2.0 + 0.5 * ("fp16" in precisions) + 0.35 * ("int8" in precisions)
                         + 0.2 * ("int4" in precisions))
    _check_free_space(out, need)
    inputs = eval_inputs(lm, eval_text, reference=reference)   # bad text fails before any work
    tmp = _make_temp_folder(out)
    timings: dict = {}
    rows = {p: PrecisionRow(precision=p, file=FILE_NAME.format(precision=p)) for p in precisions}
    try:
        # 1. export ------------------------------------------------------------------------
        t0 = time.perf_counter()
        _step(job, "export", 0.0, "tracing the model (torch.onnx.export, dynamo)")
        fp32_path = tmp / FILE_NAME.format(precision="fp32")
        key = _fingerprint(reference) + (lm.kind, OPSET)
        cached = _cached_export(key) if reuse_export else None
        if cached is not None:
            _copy_model(cached, fp32_path)
            notes.append("The fp32 export was reused from earlier in this session (same weights).")
        else:
            export_onnx(lm, fp32_path, job, external_data=external, reference=reference)
            if not external and fp32_bytes <= _EXPORT_CACHE_MAX_BYTES:
                _remember_export(key, fp32_path)
        _step(job, "export", 1.0, "saved the fp32 graph")
        timings["export"] = time.perf_counter() - t0

        # 2. convert -----------------------------------------------------------------------
        if "fp16" in precisions:
            t0 = time.perf_counter()
            _step(job, "convert", 0.0, "fp16 (float16 converter, fragile ops kept fp32)")
            to_fp16(fp32_path, tmp / rows["fp16"].file, external=external and fp32_bytes / 2 > EXTERNAL_DATA_BYTES)
            _step(job, "convert", 1.0, "saved fp16")
            timings["convert_fp16"] = time.perf_counter() - t0

        # 3. quantize ----------------------------------------------------------------------
        for i, p in enumerate(q for q in ("int8", "int4") if q in precisions):
            t0 = time.perf_counter()
            _step(job, "quantize", 0.5 * i, f"{p} ({'dynamic, MatMul/Gemm/Gather weights' if p == 'int8' else 'weight-only MatMulNBits'})")
            try:
                if p == "int8":
                    to_int8(fp32_path, tmp / rows[p].file, tmp / "_int8-source.onnx", per_channel=per_channel,
                            external=external and fp32_bytes / 4 > EXTERNAL_DATA_BYTES)
                else:
                    to_int4(fp32_path, tmp / rows[p].file, external=external and fp32_bytes / 8 > EXTERNAL_DATA_BYTES)
            except (LabError, MemoryError):
                raise
            except OSError as err:
                raise _os_error(err, out) from None
            except Exception as err:  # a quantizer that cannot handle this graph: say so in the row
                _remove_model(tmp / rows[p].file)
                rows[p].error = f"{p} quantization failed on this onnxruntime: {_first_line(str(err))}"
            _step(job, "quantize", 0.5 * i + 0.5, f"saved {p}")
            timings[f"quantize_{p}"] = time.perf_counter() - t0
        if "fp32" not in precisions:
            _remove_model(fp32_path)
            fp32_path = None

        # 4. verify ------------------------------------------------------------------------
        t0 = time.perf_counter()
        _step(job, "verify", 0.0, "torch fp32 reference logits")
        ref_logits = torch_logits(reference, lm.kind, inputs)
        labels = inputs.labels
        ppl_torch = perplexity(ref_logits, labels, lm.kind)
        made = [p for p in precisions if rows[p].error is None]
        for i, p in enumerate(made):
            row = rows[p]
            _step(job, "verify", (i + 0.05) / (len(made) + 0.2), f"running {p} with onnxruntime")
            path = tmp / row.file
            for k, v in onnx_sizes(path).items():
                setattr(row, k, v)
            got, perf = measure(path, inputs, threads=threads, provider_list=provider_list,
                                runs=latency_runs, job=job)
            for k in ("runtime_bytes", "latency_ms_median", "latency_ms_p95"):
                setattr(row, k, perf[k])
            for k, v in fidelity(ref_logits, got, labels, lm.kind).items():
                setattr(row, k, v)
            if row.perplexity is not None and ppl_torch is not None:
                row.perplexity_change = row.perplexity - ppl_torch
            if row.nan_count or row.inf_count:
                row.notes.append(f"{row.nan_count} NaN and {row.inf_count} inf logits: values overflowed "
                                 f"the {p} range somewhere in the graph.")
        _finish_rows(rows, precisions, provider_list, notes)
        timings["verify"] = time.perf_counter() - t0
        _step(job, "verify", 0.99, "writing report.json")
        report = ConversionReport(
            model=lm.card.ref or lm.card.name, kind=lm.kind, out=str(out), graph=graph_description(lm.kind),
            opset=OPSET, provider=provider_text, threads=threads, eval_text=eval_text,
            eval_tokens=inputs.tokens, perplexity_torch=ppl_torch, rows=[rows[p] for p in precisions],
            timings_s={k: round(v, 3) for k, v in timings.items()}, notes=notes, per_channel=per_channel)
        try:
            (tmp / REPORT_NAME).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
        except OSError as err:
            raise _os_error(err, out) from None
        job.check()   # the last moment a cancel still leaves the folder untouched
        try:
            _publish(tmp, out, force)
        except OSError as err:
            raise _os_error(err, out) from None
        return report
    except OSError as err:   # disk full, permissions changed under us, ...
        raise _os_error(err, out) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _finish_rows(rows: dict, precisions, provider_list, notes: list) -> None:
    base = rows.get("fp32")
    for p in precisions:
        r = rows[p]
        if r.error:
            continue
        if base is not None and base.error is None and base.file_bytes:
            r.size_ratio = r.file_bytes / base.file_bytes
            if base.latency_ms_median:
                r.latency_ratio = r.latency_ms_median / base.latency_ms_median
        if p == "fp16":
            r.notes.append("Kept fp32: inputs and outputs, normalisations (LayerNorm, RMSNorm), Softmax, Pow, "
                           "ReduceMean, Sqrt, Reciprocal, Exp, Log: they overflow or lose too much in fp16.")
        if p == "int8":
            r.notes.append("int8: MatMul/Gemm and embedding (Gather) weights, with fp32 scales; LayerNorm "
                           "weights and biases stay fp32; activations are quantized on the fly (dynamic).")
        if p == "int4":
            r.notes.append("int4 weight-only: MatMul (MatMulNBits) and embedding (GatherBlockQuantized) "
                           "weights in blocks of 32 with fp32 scales; biases and norms stay fp32.")
    cpu_only = provider_list == ["CPUExecutionProvider"]
    f16, f32 = rows.get("fp16"), rows.get("fp32")
    if cpu_only and f16 and f32 and f16.latency_ms_median and f32.latency_ms_median:
        if f16.latency_ms_median > f32.latency_ms_median:
            msg = (f"fp16 is SLOWER than fp32 here ({f16.latency_ms_median:.1f} ms vs {f32.latency_ms_median:.1f} ms): "
                   "onnxruntime's CPU provider has few fp16 kernels and casts back and forth. fp16 halves "
                   "the file and memory; its speed pays off on a GPU.")
            f16.notes.append(msg)
            notes.append(msg)
    elif cpu_only and f16:
        f16.notes.append("On the CPU provider fp16 is often slower than fp32 (few fp16 kernels).")
    if cpu_only and f16:
        f16.notes.append("onnxruntime's CPU provider computes most fp16 ops in fp32 behind inserted Casts: "
                         "here fp16 saves disk and memory, not arithmetic, and overflows only where a "
                         "tensor is stored in fp16 between ops (on a GPU the maths itself is fp16).")
    if cpu_only:
        notes.append("Latency measured on onnxruntime's CPU provider (no CUDA provider available).")


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


# --- devices the memory calculator compares against -------------------------------------------

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
