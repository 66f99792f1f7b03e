"""Fixtures every test folder shares: tiny models of each kind, built once per run, and
their loaded form."""
import os

# Qt must see this before it is imported anywhere.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TVLAB_SETTINGS_ORG", "tvlab-tests")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from lab.bench import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Build (once per run) tiny models of every kind; returns a function kind -> folder."""
    root = tmp_path_factory.mktemp("tiny-models")
    built = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = tiny_models.build(kind, root / kind)
        return built[kind]

    return get


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """A function kind -> LoadedModel (on the CPU, fp32), loaded once per run and shared:
    tests that change a model load their own."""
    from lab.core import models

    cache = {}

    def get(kind: str):
        if kind not in cache:
            cache[kind] = models.load(str(tiny_model_dir(kind)))
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_model_dir):
    return tiny_model_dir("gpt2")


@pytest.fixture(scope="session")
def tiny_bert(tiny_model_dir):
    return tiny_model_dir("bert")


@pytest.fixture(scope="session")
def tiny_t5(tiny_model_dir):
    return tiny_model_dir("t5")


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_dir):
    return tiny_model_dir("llama")


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where CUDA is; CI has none, so they are skipped there."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
