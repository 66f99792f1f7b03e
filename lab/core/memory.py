"""Memory estimates: bytes per dtype, inference, and training broken down.

The one source of truth for bytes per parameter (``DTYPE_BYTES``). Sizes are in bytes;
"GB" in text means 1e9 bytes (the course's "1B parameters in fp32 = 4 GB").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from lab.core.errors import InputError
from lab.core.units import format_bytes

DTYPE_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}
DTYPE_SOURCE = "Bytes per parameter: fp32 4, fp16 2, bf16 2, int8 1, int4 0.5 (IEEE 754 / integer widths)"

INFERENCE_OVERHEAD = 1.2
INFERENCE_SOURCE = ("Inference rule of thumb: weights x 1.2 (the extra 20% for activations, KV cache "
                    "and buffers at modest batch and context; EleutherAI, Transformer Math 101)")

TRAINING_SOURCE = ("Adam training (EleutherAI, Transformer Math 101; Rajbhandari et al. 2020, ZeRO): "
                   "mixed precision = 2 (weights) + 2 (gradients) + 12 (fp32 master copy, momentum, "
                   "variance) = 16 bytes/param, 18 with fp32 gradients; pure fp32 = 4 + 4 + 8 = 16")
ACTIVATION_SOURCE = ("Activations per layer without recomputation: s*b*h*(34 + 5*a*s/h) bytes with 16-bit "
                     "activations (Korthikanti et al. 2022, Reducing Activation Recomputation in Large "
                     "Transformer Models, arXiv 2205.05198, Sec. 4.1)")
RULE_OF_THUMB_SOURCE = ("Course rule of thumb: training needs about 6x the fp32 weights "
                        "(1B parameters: 4 GB of weights, about 24 GB to train), activations included")
PRECISIONS = ("mixed", "fp32")

#: Published shapes to estimate activations from when only a parameter count is known:
#: (params, layers, d_model, heads, name). The nearest row (in log parameters) is used.
TYPICAL_SHAPES = (
    (125e6, 12, 768, 12, "GPT-3 Small (125M)"),
    (350e6, 24, 1024, 16, "GPT-3 Medium (350M)"),
    (760e6, 24, 1536, 16, "GPT-3 Large (760M)"),
    (1.3e9, 24, 2048, 16, "GPT-3 XL (1.3B)"),
    (2.7e9, 32, 2560, 32, "GPT-3 2.7B"),
    (6.7e9, 32, 4096, 32, "GPT-3 6.7B"),
    (13e9, 40, 5140, 40, "GPT-3 13B"),
    (70e9, 80, 8192, 64, "Llama 2 70B"),
    (175e9, 96, 12288, 96, "GPT-3 175B"),
)
TYPICAL_SHAPE_SOURCE = ("Typical shapes: Brown et al. 2020 (GPT-3), arXiv 2005.14165, Table 2.1; "
                        "Touvron et al. 2023b (Llama 2 70B), arXiv 2307.09288")
TYPICAL_SEQ, TYPICAL_BATCH = 2048, 1
#: Above this share of the device an estimate cannot promise "fits": the CUDA context,
#: allocator fragmentation and temporaries take the rest.
LIMIT_FRACTION = 0.9
STATUSES = ("fits", "at the limit", "does not fit", "unknown")


def dtype_bytes(dtype: str) -> float:
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise InputError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.") from None


def weights_bytes(params: float, dtype: str = "fp32") -> float:
    return _params(params) * dtype_bytes(dtype)


def weights_by_dtype(params: float) -> dict:
    """Weights in bytes at every dtype: {"fp32": ..., "fp16": ..., ...}."""
    return {d: weights_bytes(params, d) for d in DTYPE_BYTES}


def inference_bytes(params: float, dtype: str = "fp16") -> float:
    """Inference estimate: weights x 1.2."""
    return weights_bytes(params, dtype) * INFERENCE_OVERHEAD


def activation_bytes(layers: int, hidden: int, heads: int, seq: int, batch: int, precision: str = "mixed") -> float:
    """Activations kept for backward, all layers, no recomputation.

    Korthikanti et al. count 16-bit activations (34 = the 2-byte tensors plus 1-byte
    dropout masks); for fp32 training we double it, a slight overestimate (masks stay 1 byte).
    """
    for name, v in (("layers", layers), ("hidden", hidden), ("heads", heads), ("sequence length", seq),
                    ("batch", batch)):
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise InputError(f"{name.capitalize()} must be a positive number, got {v!r}.")
    s, b, h, a = float(seq), float(batch), float(hidden), float(heads)
    per_layer = s * b * h * (34.0 + 5.0 * a * s / h)
    return layers * per_layer * (2.0 if _precision(precision) == "fp32" else 1.0)


def typical_shape(params: float, seq: int = TYPICAL_SEQ, batch: int = TYPICAL_BATCH) -> dict:
    """The published shape nearest to ``params`` (in log scale), to estimate activations from
    when the model's own shape is not known: layers, d_model, heads, plus seq and batch."""
    N = _params(params)
    n, layers, d_model, heads, name = min(TYPICAL_SHAPES, key=lambda r: abs(math.log(r[0] / N)))
    return dict(layers=layers, d_model=d_model, heads=heads, seq=int(seq), batch=int(batch), source="typical",
                basis=f"{name}: {layers} layers, d_model {d_model}, {heads} heads "
                      f"(the published shape nearest to {N:.3g} parameters)")


@dataclass
class TrainingMemory:
    """Training memory in bytes, by part."""

    params: float
    precision: str
    weights: float
    gradients: float
    adam_master: float
    adam_momentum: float
    adam_variance: float
    activations: Optional[float]          # None when the model's shape is not given
    activation_inputs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def adam(self) -> float:
        return self.adam_master + self.adam_momentum + self.adam_variance

    @property
    def model_states(self) -> float:
        return self.weights + self.gradients + self.adam

    @property
    def total(self) -> float:
        return self.model_states + (self.activations or 0.0)

    @property
    def bytes_per_param(self) -> float:
        return self.model_states / self.params

    def to_json(self) -> dict:
        return dict(precision=self.precision, weights_bytes=self.weights, gradients_bytes=self.gradients,
                    adam_bytes=dict(master=self.adam_master, momentum=self.adam_momentum,
                                    variance=self.adam_variance, total=self.adam),
                    model_states_bytes=self.model_states, bytes_per_param=self.bytes_per_param,
                    activations_bytes=self.activations, activation_inputs=self.activation_inputs,
                    total_bytes=self.total, notes=self.notes,
                    sources=[TRAINING_SOURCE] + ([ACTIVATION_SOURCE] if self.activations is not None else []))


def training_memory(params: float, precision: str = "mixed", *, fp32_gradients: bool = False,
                    layers: Optional[int] = None, hidden: Optional[int] = None, heads: Optional[int] = None,
                    seq: int = 2048, batch: int = 1) -> TrainingMemory:
    """Training memory with Adam. Activations need the model's shape (layers, hidden, heads)."""
    N = _params(params)
    p = _precision(precision)
    if p == "mixed":
        w, g = 2.0, (4.0 if fp32_gradients else 2.0)
        master = 4.0
    else:
        w, g, master = 4.0, 4.0, 0.0
    notes = []
    if p == "mixed":
        notes.append("Mixed precision: 16-bit weights and gradients for the passes, an fp32 master copy "
                     "plus fp32 Adam momentum and variance for the update.")
    else:
        notes.append("Pure fp32: the weights are the master copy; Adam adds fp32 momentum and variance.")
    shape = (layers, hidden, heads)
    acts = None
    inputs = {}
    if all(v is not None for v in shape):
        acts = activation_bytes(layers, hidden, heads, seq, batch, p)
        inputs = dict(layers=layers, hidden=hidden, heads=heads, seq=seq, batch=batch)
    elif any(v is not None for v in shape):
        raise InputError("Give all of layers, hidden and heads to estimate activations (or none of them).")
    else:
        notes.append("Activations not included: give layers, hidden size and heads to estimate them.")
    return TrainingMemory(params=N, precision=p, weights=N * w, gradients=N * g, adam_master=N * master,
                          adam_momentum=N * 4.0, adam_variance=N * 4.0, activations=acts,
                          activation_inputs=inputs, notes=notes)


def fits(required_bytes: float, device_bytes: Optional[float], unknown: tuple = ()) -> Optional[dict]:
    """Does ``required_bytes`` fit in ``device_bytes``? None when no device memory is known.

    ``unknown`` names parts left out of ``required_bytes`` (e.g. "activations"): then the
    answer is never "fits". ``status`` is one of STATUSES; ``fits`` is True only for
    "fits", False for "does not fit", None when the estimate cannot tell."""
    if device_bytes is None:
        return None
    if not (device_bytes > 0 and math.isfinite(device_bytes)):
        raise InputError(f"Device memory must be a positive number of bytes, got {device_bytes!r}.")
    unknown = tuple(unknown)
    need, dev = _gb(required_bytes), _gb(device_bytes)
    if required_bytes > device_bytes:
        status = "does not fit"
        text = f"does not fit: needs {need}, the device has {dev}"
        if unknown:
            text += f" (without the {' and '.join(unknown)}, not estimated)"
    elif unknown:
        status = "unknown"
        text = (f"unknown: the known parts take {need} of {dev}; the {' and '.join(unknown)} "
                "(not estimated) decide")
    elif required_bytes > LIMIT_FRACTION * device_bytes:
        status = "at the limit"
        text = (f"at the limit: needs {need} of {dev} (over {LIMIT_FRACTION:.0%}: the CUDA context and "
                "fragmentation can tip it over)")
    else:
        status = "fits"
        text = f"fits: {need} of {dev}"
    return dict(fits={"fits": True, "does not fit": False}.get(status), status=status,
                unknown_parts=list(unknown), required_bytes=required_bytes, device_bytes=float(device_bytes),
                headroom_bytes=float(device_bytes) - required_bytes,
                fraction=required_bytes / device_bytes, verdict=text,
                note="The CUDA context and allocator fragmentation take a few hundred MB more in practice.")


def course_example(params: float = 1e9, train: Optional[TrainingMemory] = None) -> dict:
    """The course's rule of thumb (1B: 4 GB of fp32 weights, ~24 GB to train) next to the
    lab's breakdown, as one story; with ``train`` (the calculator's estimate), its total too."""
    N = _params(params)
    w32 = weights_bytes(N, "fp32")
    rule = 6 * w32
    fp32 = training_memory(N, "fp32")
    mixed = training_memory(N, "mixed")
    lines = [
        f"Weights: {N:.3g} parameters x 4 bytes (fp32) = {_gb(w32)}.",
        f"Rule of thumb: about 6x the weights to train = 6 x {_gb(w32)} = {_gb(rule)}.",
        f"Where it goes (Adam, pure fp32): weights {_gb(fp32.weights)} + gradients {_gb(fp32.gradients)} "
        f"+ momentum {_gb(fp32.adam_momentum)} + variance {_gb(fp32.adam_variance)} = {_gb(fp32.model_states)} "
        f"(16 bytes/param, 4x the weights).",
        f"Mixed precision: 2 + 2 + 12 bytes/param = {_gb(mixed.model_states)} as well: the 16-bit copies save "
        f"nothing on states because Adam keeps an fp32 master copy.",
        f"The remaining {_gb(rule - fp32.model_states)} of the 6x rule is a budget for activations, which grow "
        f"with batch x sequence length (and are cut by recomputation): the rule hides them, the breakdown shows them.",
    ]
    out = dict(params=N, weights_fp32_bytes=w32, rule_of_thumb_bytes=rule, rule_multiplier=6,
               states_fp32_bytes=fp32.model_states, states_mixed_bytes=mixed.model_states,
               activation_budget_bytes=rule - fp32.model_states, explanation=lines,
               source=RULE_OF_THUMB_SOURCE)
    if train is not None:
        out["lab_total_bytes"] = train.total if train.activations is not None else None
        if train.activations is None:
            lines.append(f"This estimate: {_gb(train.model_states)} of model states, activations not estimated, "
                         f"so the total is unknown (the rule's {_gb(rule)} assumes a typical budget).")
        else:
            a = train.activation_inputs
            lines.append(
                f"This estimate ({train.precision}): {_gb(train.model_states)} of states + {_gb(train.activations)} "
                f"of activations ({a['layers']} layers, d_model {a['hidden']}, batch {a['batch']} x {a['seq']} "
                f"tokens, no recomputation) = {_gb(train.total)}, "
                f"{'above' if train.total > rule else 'within'} the rule's {_gb(rule)}.")
    return out


def estimate(params: float, *, precision: str = "mixed", batch: int = TYPICAL_BATCH, seq: int = TYPICAL_SEQ,
             layers: Optional[int] = None, hidden: Optional[int] = None, heads: Optional[int] = None,
             fp32_gradients: bool = False, inference_dtype: str = "fp16",
             device_bytes: Optional[float] = None, activations: bool = True) -> dict:
    """The calculator in one call (what ``tvlab memory --json`` prints).

    Without a shape, activations come from ``typical_shape`` (said in ``activations.shape``);
    ``activations=False`` leaves them out, and the training verdict is then "unknown"."""
    N = _params(params)
    shape = None
    if all(v is None for v in (layers, hidden, heads)):
        if activations:
            shape = typical_shape(N, seq, batch)
            layers, hidden, heads = shape["layers"], shape["d_model"], shape["heads"]
    else:
        shape = dict(layers=layers, d_model=hidden, heads=heads, seq=seq, batch=batch, source="given",
                     basis=f"the given shape: {layers} layers, d_model {hidden}, {heads} heads")
    train = training_memory(N, precision, fp32_gradients=fp32_gradients, layers=layers, hidden=hidden,
                            heads=heads, seq=seq, batch=batch)
    if shape is not None and shape["source"] == "typical":
        train.notes.append(f"Activations for a typical shape, {shape['basis']}, batch {batch} x {seq} tokens; "
                           "give the model's shape to replace it.")
    inf = {d: inference_bytes(N, d) for d in DTYPE_BYTES}
    out = dict(
        params=N,
        weights_bytes=weights_by_dtype(N),
        inference_bytes=inf,
        inference_dtype=inference_dtype,
        training=train.to_json(),
        activations=dict(bytes=train.activations, shape=shape),
        course_example=course_example(N, train),
        sources=dict(dtype=DTYPE_SOURCE, inference=INFERENCE_SOURCE, training=TRAINING_SOURCE,
                     activations=ACTIVATION_SOURCE, rule_of_thumb=RULE_OF_THUMB_SOURCE,
                     typical_shape=TYPICAL_SHAPE_SOURCE),
    )
    if device_bytes is not None:
        out["device_bytes"] = float(device_bytes)
        unknown = ("activations",) if train.activations is None else ()
        out["fits"] = dict(inference=fits(inf[dtype_key(inference_dtype)], device_bytes),
                           training=fits(train.total, device_bytes, unknown))
        out["verdict"] = {mode: v["status"] for mode, v in out["fits"].items()}
    return out


def dtype_key(dtype: str) -> str:
    dtype_bytes(dtype)
    return dtype.lower()


def _precision(p: str) -> str:
    q = str(p).lower()
    if q in ("mixed", "amp", "fp16", "bf16"):
        return "mixed"
    if q == "fp32":
        return "fp32"
    raise InputError(f"Unknown training precision {p!r}; choose mixed or fp32.")


def _params(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(f"Parameter count must be a number, got {v!r}.") from None
    if not (f > 0 and math.isfinite(f)):
        raise InputError(f"Parameter count must be positive, got {v!r}.")
    return f


def _gb(b: float) -> str:
    """Every size of one explanation in GB, so they compare at a glance."""
    return format_bytes(b, "GB")
