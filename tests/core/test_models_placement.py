"""Where the weights go: straight onto the chosen device (device_map), and a split without
accelerate (an optional extra) says how to install it."""
import sys

import pytest

from lab.core import models
from lab.core.errors import ModelLoadError


def test_a_device_load_passes_device_map_and_never_moves_the_model_afterwards(tiny_gpt2, monkeypatch):
    import torch

    seen = {}
    real = models._from_pretrained

    def spy(auto_cls, folder, kwargs):
        seen.update(kwargs)
        return real(auto_cls, folder, {k: v for k, v in kwargs.items() if k != "device_map"})

    def no_second_copy(self, *args, **kwargs):
        raise AssertionError("the model was moved after loading (a second copy in memory)")

    monkeypatch.setattr(models, "choose_device", lambda device, dtype: ("cuda:0", []))
    monkeypatch.setattr(models, "_from_pretrained", spy)
    monkeypatch.setattr(torch.nn.Module, "to", no_second_copy)
    lm = models.load(str(tiny_gpt2), "cuda:0")
    assert seen["device_map"] == "cuda:0"
    assert lm.card.device == "cuda:0" and lm.card.device_map == {}


def test_a_cpu_load_passes_no_device_map(tiny_gpt2, monkeypatch):
    seen = {}
    real = models._from_pretrained
    monkeypatch.setattr(models, "_from_pretrained", lambda c, f, kw: seen.update(kw) or real(c, f, kw))
    models.load(str(tiny_gpt2), "cpu")
    assert "device_map" not in seen


def test_a_split_without_accelerate_says_how_to_install_it(tiny_gpt2, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)     # import accelerate -> ImportError
    monkeypatch.setattr(models, "choose_device", lambda device, dtype: (models.SPLIT, []))
    with pytest.raises(ModelLoadError) as err:
        models.load(str(tiny_gpt2), "split")
    assert "pip install 'transformer-visual-lab[multi-gpu]'" in str(err.value)
