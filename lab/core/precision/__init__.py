"""Export the loaded model to ONNX at fp32, derive fp16 / int8 / int4, and measure each.

What lives where:

- ``pipeline``: ``convert``, the whole conversion stage by stage (its docstring tells it)
- ``child``: ``convert_in_child``, the same conversion in a child process (the GUI's)
- ``output``: the precisions, the report's rows, the output folder (checked, published whole)
- ``export``: the fp32 ONNX export, the exporter's errors in one sentence, the export cache
- ``graph``: fp16 / int8 / int4 files and the graph rewrites they need
- ``verify``: running a file with onnxruntime against torch: fidelity, size, memory, latency
- ``formats``: one number in fp32 / fp16 / bf16 / int8 / int4 (bits, stored value, error), the table
- ``weights``: one weight tensor's histogram and the error each format makes on it
- ``twins``: the model at another precision (torch fp16 / bf16 copy, ONNX file) -> logits
- ``next_token``: the same prompt through several twins, top-k side by side, agreement, KL
"""
from lab.core.precision.child import CHILD_COMMAND, convert_in_child
from lab.core.precision.export import EXTERNAL_DATA_BYTES, OPSET, export_onnx, graph_description, untraceable_message
from lab.core.precision.formats import FORMATS, FormatRow, Stored, format_table, parse_value, store, store_all
from lab.core.precision.graph import (
                                      FP16_KEEP_FP32_OPS,
                                      INT8_OPS,
                                      dedupe_nodes,
                                      fold_weight_transposes,
                                      gemm_to_matmul,
                                      to_fp16,
                                      to_int4,
                                      to_int8,
)
from lab.core.precision.next_token import NextTokenComparison, PrecisionPrediction
from lab.core.precision.next_token import compare as compare_next_token
from lab.core.precision.output import (
                                      DEFAULT_PRECISIONS,
                                      FILE_NAME,
                                      PRECISIONS,
                                      REPORT_NAME,
                                      ConversionReport,
                                      FolderNotEmpty,
                                      PrecisionRow,
                                      check_output_folder,
                                      parse_precisions,
)
from lab.core.precision.pipeline import convert
from lab.core.precision.twins import Twin, converted_file, model_kind, open_twin
from lab.core.precision.verify import (
                                      EVAL_MAX_TOKENS,
                                      EVAL_TEXT,
                                      LATENCY_BUDGET_S,
                                      LATENCY_RUNS,
                                      EvalInputs,
                                      default_threads,
                                      eval_inputs,
                                      fidelity,
                                      measure,
                                      onnx_sizes,
                                      perplexity,
                                      providers,
                                      torch_logits,
)
from lab.core.precision.weights import TensorInfo, TensorStats, tensor_stats, weight_tensors

__all__ = [
    "EXTERNAL_DATA_BYTES", "OPSET", "export_onnx", "graph_description", "untraceable_message",
    "FP16_KEEP_FP32_OPS", "INT8_OPS", "dedupe_nodes", "fold_weight_transposes", "gemm_to_matmul", "to_fp16",
    "to_int4", "to_int8",
    "DEFAULT_PRECISIONS", "FILE_NAME", "PRECISIONS", "REPORT_NAME", "ConversionReport", "PrecisionRow",
    "check_output_folder", "parse_precisions", "FolderNotEmpty",
    "convert", "CHILD_COMMAND", "convert_in_child",
    "EVAL_MAX_TOKENS", "EVAL_TEXT", "LATENCY_BUDGET_S", "LATENCY_RUNS", "EvalInputs", "default_threads",
    "eval_inputs", "fidelity", "measure", "onnx_sizes", "perplexity", "providers", "torch_logits",
    "FORMATS", "FormatRow", "Stored", "format_table", "parse_value", "store", "store_all",
    "NextTokenComparison", "PrecisionPrediction", "compare_next_token",
    "Twin", "converted_file", "model_kind", "open_twin",
    "TensorInfo", "TensorStats", "tensor_stats", "weight_tensors",
]
