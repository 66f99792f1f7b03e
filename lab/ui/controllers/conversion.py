"""The ONNX conversion's state, owned by the model worker.

The controller runs the conversion in a child process (``precision.convert_in_child``: the
exporter, onnxruntime and the quantizer keep 130-200 MB for good in the process that ran
them, and a crash there cannot take the lab down), from the loaded model's files at its
dtype, and remembers the last result: the report, the folder it was written to and the
model it describes. Loading another model clears all of it (``model_replaced``), so a
readout never outlives its model. The panel sends ``convert`` and shows the
``Conversion`` snapshot it gets back.

Cancel (the panel's button, Esc, Run ▸ Cancel) marks the task's job; the child stops at
the next stage boundary and removes its temporary folder, so the output folder stays as it
was. The only step it cannot take back is the final publish (a few renames): a cancel that
arrives after it finds the files written, and the panel says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lab.core import precision
from lab.ui.controllers.base import Controller


@dataclass(frozen=True)
class Conversion:
    """One finished conversion: the report (read-only from here on), its folder and model."""

    report: precision.ConversionReport
    out: str
    model: str


def default_folder(model_name: str) -> str:
    """Where a model's conversion goes unless the user picks a folder."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name) or "model"
    return str(Path.home() / "tvlab-onnx" / safe)


class ConversionController(Controller):
    name = "precision.convert"
    lane = "model"

    def __init__(self):
        self.last: Optional[Conversion] = None

    def convert(self, lm, job, out: str, precisions: tuple, force: bool = False,
                per_channel: bool = False) -> Conversion:
        report = precision.convert_in_child(lm.card.ref, lm.dtype, out, precisions, force=force,
                                            per_channel=per_channel, job=job)
        self.last = Conversion(report=report, out=str(report.out), model=report.model)
        return self.last

    def model_replaced(self) -> None:
        self.last = None
