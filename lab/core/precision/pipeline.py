"""The conversion: export at fp32, derive fp16 / int8 / int4, measure each, publish the folder.

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

import json
import shutil
import time
from typing import Optional, Sequence, Union

from lab.core.errors import LabError, first_line
from lab.core.jobs import Job
from lab.core.precision.export import (
    _EXPORT_CACHE_MAX_BYTES,
    EXTERNAL_DATA_BYTES,
    OPSET,
    FolderExport,
    SessionExport,
    _copy_model,
    _fp32_bytes,
    _reference_model,
    export_onnx,
    graph_description,
)
from lab.core.precision.graph import _remove_model, to_fp16, to_int4, to_int8
from lab.core.precision.output import (
    DEFAULT_PRECISIONS,
    FILE_NAME,
    REPORT_NAME,
    ConversionReport,
    PrecisionRow,
    _check_free_space,
    _make_temp_folder,
    _os_error,
    _publish,
    check_output_folder,
    parse_precisions,
)
from lab.core.precision.verify import (
    EVAL_TEXT,
    LATENCY_RUNS,
    default_threads,
    eval_inputs,
    fidelity,
    measure,
    onnx_sizes,
    perplexity,
    providers,
    torch_logits,
)

_STAGES = {"export": (0.0, 0.45), "convert": (0.45, 0.55), "quantize": (0.55, 0.7), "verify": (0.7, 1.0)}


def _step(job: Job, stage: str, within: float, what: str) -> None:
    lo, hi = _STAGES[stage]
    job.progress(lo + (hi - lo) * within, f"{stage}: {what}")


def convert(lm, out, precisions=DEFAULT_PRECISIONS, *, force: bool = False, per_channel: bool = False,
            threads: Optional[int] = None, eval_text: str = EVAL_TEXT, latency_runs: int = LATENCY_RUNS,
            reuse_export: bool = True, job: Optional[Job] = None,
            export_slot: Optional[Union[SessionExport, FolderExport]] = None,
            notes: Sequence[str] = ()) -> ConversionReport:
    """Export ``lm`` at each precision into ``out`` and measure every file.

    Writes ``out/model-<precision>.onnx`` (+ ``.data`` for external data) and
    ``out/report.json``. Raises InputError for a folder that cannot be used (or holds
    files, unless ``force``) and for a model the exporter cannot trace; Cancelled leaves
    the folder as it was.

    ``export_slot`` is where an earlier fp32 export of the same weights is found and this
    one kept (default: this process's memory, keyed by the live parameters); ``notes``
    open the report's notes (the caller's word on where the model came from).
    """
    job = Job.ensure(job)
    precisions = parse_precisions(precisions)
    out = check_output_folder(out, force)
    threads = int(threads or default_threads())
    provider_list, provider_text = providers()
    reference, copy_notes = _reference_model(lm)
    notes = [*notes, *copy_notes]
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
        slot = export_slot if export_slot is not None else SessionExport(reference, lm.kind)
        cached = slot.find() if reuse_export else None
        if cached is not None:
            _copy_model(cached, fp32_path)
            notes.append("The fp32 export was reused from earlier in this session (same weights).")
        else:
            export_onnx(lm, fp32_path, job, external_data=external, reference=reference)
            if not external and fp32_bytes <= _EXPORT_CACHE_MAX_BYTES:
                slot.keep(fp32_path)
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
                rows[p].error = f"{p} quantization failed on this onnxruntime: {first_line(err)}"
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
