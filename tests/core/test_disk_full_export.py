"""A full disk while the ONNX exporter writes the fp32 graph: one clear error, and neither
the output folder nor a half file next to it."""
import errno
from pathlib import Path

import pytest
import torch

from lab.core import precision
from lab.core.errors import InputError


def test_disk_full_while_the_exporter_saves_leaves_nothing(loaded, tmp_path, monkeypatch):
    gpt2 = loaded("gpt2")

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half an onnx graph")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", full)
    out = tmp_path / "onnx"
    with pytest.raises(InputError, match="full"):
        precision.convert(gpt2, out, ("fp32",), reuse_export=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []
