"""Fixtures for the zoo's training tests."""
from pathlib import Path

import pytest


def _card_ok(folder: Path):
    card = (folder / "README.md").read_text(encoding="utf-8")
    for needle in ("Data and licence", "Parameters:", "Training tokens:", "6ND", "PF-days",
                   "Hardware:", "Wall time:", "## Validation", "## Samples", "## Reproduce",
                   "python -m models.training.train"):
        assert needle in card, needle
    assert card.count("   output:") == 3


@pytest.fixture
def card_ok():
    """The function folder -> None that checks a model card has every section it must."""
    return _card_ok
