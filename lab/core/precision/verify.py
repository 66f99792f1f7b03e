"""Measuring an ONNX file against the torch fp32 model on a fixed text.

Logit differences, top-1 agreement, KL, perplexity and NaN/inf counts; file size,
parameter bytes per element type, session memory and latency.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from lab.core.devices import trim_heap
from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.precision.export import _wrapper

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


def measure(path: Path, inputs: EvalInputs, *, threads: int, provider_list: list[str],
            runs: int = LATENCY_RUNS, job: Optional[Job] = None) -> tuple[np.ndarray, dict]:
    """Run ``path`` with onnxruntime: logits[pos, vocab], session memory and latency."""
    import onnxruntime as ort

    job = Job.ensure(job)
    trim_heap()
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
    trim_heap()
    times.sort()
    p95 = times[min(len(times) - 1, int(math.ceil(0.95 * len(times))) - 1)]
    return logits[0].astype(np.float32), dict(runtime_bytes=runtime,
                                              latency_ms_median=float(statistics.median(times)),
                                              latency_ms_p95=float(p95), latency_runs=len(times))
