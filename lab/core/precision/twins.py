"""The loaded model at another precision: a torch copy in fp32 / fp16 / bf16, or an ONNX file.

A *twin* answers one question, the logits for some token ids, whatever it is made of::

    twin = open_twin(model, tokenizer, "fp16")            # or "fp32", "bf16", a path to .onnx
    logits = twin.logits(input_ids)                        # float32 [batch, seq, vocab], CPU
    logits = twin.logits(input_ids, decoder_input_ids)     # encoder-decoder models
    twin.close()                                           # frees the copy / the session

Torch twins are copies of the model (the model itself is never moved or cast; a copy is
skipped when the model already has that dtype on that device). They run on the model's
device unless ``device`` says otherwise. fp16 on the CPU works with this torch (its CPU
half kernels are slow but exist); a torch that lacks one raises InputError naming the op.
ONNX twins run the converter's file (``lab.core.precision.convert``) with onnxruntime:
the graph takes ``input_ids``, ``attention_mask`` (and ``decoder_input_ids``) and returns
the logits. No padding: every id is attended to.

Twins run torch: create and use them on the model worker, never on the GUI thread.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

from lab.core.errors import InputError, first_line
from lab.core.models import KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ

#: Torch precisions a twin can be cast to.
TORCH_SPECS = ("fp32", "fp16", "bf16")


def model_kind(model) -> str:
    """decoder-only, encoder-only or encoder-decoder, read from the model itself."""
    if getattr(model.config, "is_encoder_decoder", False):
        return KIND_SEQ2SEQ
    can_generate = getattr(model, "can_generate", None)
    return KIND_DECODER if callable(can_generate) and can_generate() else KIND_ENCODER


def _as_batch(ids):
    """ids as an int64 CPU tensor [batch, seq] (from a list, numpy array or tensor)."""
    import torch

    t = ids.detach().to("cpu") if isinstance(ids, torch.Tensor) else torch.as_tensor(ids)
    t = t.to(torch.int64)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2 or t.shape[1] == 0:
        raise InputError(f"Token ids must be [batch, seq] with at least one token, got shape {tuple(t.shape)}.")
    return t


class Twin:
    """The model at one precision. ``spec``: "fp32", "fp16", "bf16" or "onnx"; ``label``:
    what to call it in a table; ``note``: one sentence on how it runs (or "")."""

    spec: str = ""
    label: str = ""
    device: str = "cpu"
    note: str = ""

    def __init__(self, model, tokenizer, kind: str):
        self.tokenizer = tokenizer
        self.kind = kind
        self._config = model.config

    def logits(self, input_ids, decoder_input_ids=None):
        """float32 CPU logits [batch, seq, vocab] (the decoder's positions for encoder-decoders)."""
        ids = _as_batch(input_ids)
        dec = None
        if self.kind == KIND_SEQ2SEQ:
            dec = _as_batch(self.decoder_start() if decoder_input_ids is None else decoder_input_ids)
            if dec.shape[0] != ids.shape[0]:
                dec = dec.expand(ids.shape[0], -1)
        elif decoder_input_ids is not None:
            raise InputError(f"decoder_input_ids only apply to encoder-decoder models; this one is {self.kind}.")
        return self._logits(ids, dec)

    def decoder_start(self) -> list[int]:
        """[decoder_start_token_id]: what an encoder-decoder's decoder reads first."""
        start = getattr(self._config, "decoder_start_token_id", None)
        if start is None:
            start = getattr(self._config, "pad_token_id", 0) or 0
        return [int(start)]

    def _logits(self, ids, dec):
        raise NotImplementedError

    def close(self) -> None:
        """Free what the twin holds (its copy of the weights, its session)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} on {self.device}>"


class TorchTwin(Twin):
    def __init__(self, model, tokenizer, kind: str, spec: str, device: Optional[str] = None):
        import torch

        from lab.core.models import device_errors

        super().__init__(model, tokenizer, kind)
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[spec]
        param = next(model.parameters())
        self.spec, self.label = spec, f"torch {spec}"
        self.device = str(device or param.device)
        self.shares_weights = param.dtype == dtype and str(param.device) == str(torch.device(self.device))
        if self.shares_weights:
            self.model = model
        else:
            with device_errors(self.device):
                self.model = copy.deepcopy(model).to(self.device, dtype)
        self.model.eval()
        if spec == "fp16" and self.device == "cpu":
            self.note = "fp16 on the CPU: torch's CPU half kernels (slow, but the rounding is fp16's)."

    def _logits(self, ids, dec):
        import torch

        kwargs = dict(input_ids=ids.to(self.device), attention_mask=torch.ones_like(ids).to(self.device))
        if dec is not None:
            kwargs["decoder_input_ids"] = dec.to(self.device)
        if self.kind != KIND_ENCODER:
            kwargs["use_cache"] = False
        try:
            with torch.inference_mode():
                out = self.model(**kwargs)
        except RuntimeError as err:
            if "not implemented for" in str(err):
                raise InputError(f"torch cannot run this model in {self.spec} on {self.device}: "
                                 f"{first_line(err)}") from None
            raise
        return out.logits.float().cpu()

    def close(self) -> None:
        self.model = None


class OnnxTwin(Twin):
    def __init__(self, model, tokenizer, kind: str, path: Path):
        import onnxruntime as ort

        from lab.core.precision.verify import providers

        super().__init__(model, tokenizer, kind)
        if not path.is_file():
            raise InputError(f"No ONNX file at {path}: convert the model first (Precision converter).")
        self.path = path
        self.spec = "onnx"
        self.label = path.stem.removeprefix("model-") + " (ONNX)"
        provider_list, self.note = providers()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=provider_list)
        except Exception as err:   # onnxruntime raises its own types for bad files
            raise InputError(f"onnxruntime cannot open {path.name}: {first_line(err)}") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.device = "cuda" if provider_list[0].startswith("CUDA") else "cpu"
        if (kind == KIND_SEQ2SEQ) != ("decoder_input_ids" in self.inputs):
            raise InputError(f"{path.name} does not match the loaded model (its inputs: "
                             f"{', '.join(self.inputs)}; the model is {kind}).")

    def _logits(self, ids, dec):
        import numpy as np
        import torch

        feed = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy())}
        if dec is not None:
            feed["decoder_input_ids"] = dec.contiguous().numpy()
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def close(self) -> None:
        self.session = None


def open_twin(model, tokenizer, spec, *, device: Optional[str] = None, kind: Optional[str] = None) -> Twin:
    """The model at ``spec``: "fp32" | "fp16" | "bf16" (a torch copy on ``device``, default
    the model's) or a path to an ONNX file exported from this model. ``kind`` defaults to
    ``model_kind(model)``. InputError for an unknown spec or a file that cannot be used."""
    kind = kind or model_kind(model)
    text = str(spec)
    if text.lower() in TORCH_SPECS:
        return TorchTwin(model, tokenizer, kind, text.lower(), device)
    if text.lower().endswith(".onnx") or isinstance(spec, Path):
        return OnnxTwin(model, tokenizer, kind, Path(spec).expanduser())
    raise InputError(f"Unknown precision {text!r}: choose fp32, fp16, bf16 or an .onnx file.")


def converted_file(folder, precision: str, model_ref: Optional[str] = None) -> Optional[Path]:
    """``folder/model-<precision>.onnx`` if the converter wrote it there (for ``model_ref``
    when given, as its report.json says), else None."""
    import json

    from lab.core.precision.output import FILE_NAME, REPORT_NAME

    if not folder:
        return None
    folder = Path(folder).expanduser()
    path = folder / FILE_NAME.format(precision=precision)
    if not path.is_file():
        return None
    if model_ref is not None:
        try:
            report = json.loads((folder / REPORT_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if report.get("model") != model_ref:
            return None
    return path
