"""fp16, int8 and int4 files derived from the fp32 graph, and the graph rewrites they need.

fp16 uses ``onnxruntime.transformers.float16`` (inputs and outputs stay fp32, and so do
the ops in ``FP16_KEEP_FP32_OPS``); int8 uses ``quantize_dynamic`` on MatMul (Gemm
rewritten to MatMul + Add: the dynamic quantizer has no Gemm kernel) and the
token-embedding Gather, so a tied embedding/unembedding does not stay fp32; int4 is
weight-only ``MatMulNBits``.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from lab.core.precision.output import _os_error

#: Ops kept in fp32 in the fp16 model: they overflow (Pow, ReduceMean of squares, Exp) or
#: lose too much precision (normalisations, Softmax) in half precision.
FP16_KEEP_FP32_OPS = (
    "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "RMSNormalization", "Softmax", "LogSoftmax",
    "Pow", "ReduceMean", "ReduceSum", "ReduceSumSquare", "Sqrt", "Reciprocal", "Exp", "Log",
)
INT8_OPS = ("MatMul", "Gemm", "Gather")


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
