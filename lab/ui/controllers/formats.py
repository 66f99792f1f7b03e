"""The number-formats view's model work, owned by the model worker.

The loaded model's weight tensors and one tensor's
statistics, and the same prompt through the model at fp32 / fp16 / bf16 and the
converter's int8 ONNX file. The twins (``lab.core.precision.twins``) are kept between
comparisons, so a second prompt does not copy the model again; loading another model
closes them (``model_replaced``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from lab.core import precision
from lab.ui.controllers.base import Controller

#: The torch precisions every comparison runs, the reference first.
TORCH_SPECS = ("fp32", "fp16", "bf16")


class FormatsController(Controller):
    name = "precision.formats"
    lane = "model"

    def __init__(self):
        self._twins: dict = {}      # spec (or "onnx:path:mtime") -> Twin of the current model

    def tensors(self, lm, job) -> list:
        return precision.weight_tensors(lm.model)

    def tensor(self, lm, job, name: str):
        return precision.tensor_stats(lm.model, name)

    def compare(self, lm, job, text: str, target: str = "", onnx: Optional[str] = None):
        """Top-k at each precision; ``onnx``: the converter's int8 file, if there is one."""
        specs = list(TORCH_SPECS) + ([onnx] if onnx else [])
        twins = []
        for i, spec in enumerate(specs):
            job.progress(0.5 * i / len(specs), f"preparing {Path(spec).name if spec == onnx else spec}")
            job.check()
            twins.append(self._twin(lm, spec))
        return precision.compare_next_token(twins, text, target=target if lm.kind == "encoder-decoder" else "",
                                            job=job)

    def _twin(self, lm, spec: str):
        key = spec
        if spec not in TORCH_SPECS:
            path = Path(spec)
            key = f"onnx:{path}:{path.stat().st_mtime_ns if path.exists() else 0}"
        if key not in self._twins:
            for old in [k for k in self._twins if k.startswith("onnx:")] if key.startswith("onnx:") else []:
                self._twins.pop(old).close()       # one ONNX session at a time
            self._twins[key] = precision.open_twin(lm.model, lm.tokenizer, spec, kind=lm.kind)
        return self._twins[key]

    def model_replaced(self) -> None:
        for twin in self._twins.values():
            twin.close()
        self._twins.clear()
