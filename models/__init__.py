"""The lab's bundled model zoo: small models trained by this repository's own scripts.

``zoo:bard-gpt`` (decoder), ``zoo:bard-bert`` (encoder, masked LM) and ``zoo:dates-t5``
(encoder-decoder) live in folders beside this file, in standard Hugging Face format.
Training: ``python -m models.train {gpt,bert,t5} --out models/NAME``; the scaling sweep:
``python -m models.sweep``; see README.md here.
"""
from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent

#: zoo name -> (folder, kind) where kind is "causal", "masked" or "seq2seq"
ZOO = {
    "bard-gpt": (ZOO_DIR / "bard-gpt", "causal"),
    "bard-bert": (ZOO_DIR / "bard-bert", "masked"),
    "dates-t5": (ZOO_DIR / "dates-t5", "seq2seq"),
}

SCALING_RUNS = ZOO_DIR / "scaling_runs.csv"


def zoo_path(name: str) -> Path:
    """Folder of a zoo model; accepts ``bard-gpt`` or ``zoo:bard-gpt``."""
    key = name.removeprefix("zoo:")
    if key not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO[key][0]
