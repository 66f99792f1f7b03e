"""Published models (parameters, tokens, compute, with sources) and the zoo's own sweep."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from lab.core.errors import InputError


def known_models_path() -> Path:
    from lab.core.resources import resource

    return resource("known_models.csv")


def zoo_sweep_path() -> Path:
    """The zoo's scaling sweep (``models/scaling_runs.csv``; ``lab/zoo/`` in a bundle). May not exist."""
    from lab.core.resources import PACKAGE_DIR, REPO_ROOT

    for p in (PACKAGE_DIR / "zoo" / "scaling_runs.csv", REPO_ROOT / "models" / "scaling_runs.csv"):
        if p.is_file():
            return p
    return REPO_ROOT / "models" / "scaling_runs.csv"


@dataclass
class KnownModel:
    name: str
    family: str
    year: int
    params: float
    tokens: float               # nan when not reported
    compute_flops: float        # nan when neither reported nor estimable
    params_kind: str            # reported | estimated | unknown
    tokens_kind: str
    compute_kind: str
    params_source: str
    tokens_source: str
    compute_source: str
    notes: str

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def load_known_models(path=None) -> list[KnownModel]:
    p = Path(path) if path else known_models_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError:
        raise InputError(f"Cannot read the known-models table {p}.") from None
    rows = csv.DictReader(io.StringIO("\n".join(l for l in text.splitlines() if not l.startswith("#"))))
    out = []
    for r in rows:
        def num(s):
            s = (s or "").strip()
            return float(s) if s else math.nan
        out.append(KnownModel(
            name=r["name"], family=r["family"], year=int(r["year"]), params=num(r["params"]),
            tokens=num(r["tokens"]), compute_flops=num(r["compute_flops"]),
            params_kind=r["params_kind"], tokens_kind=r["tokens_kind"], compute_kind=r["compute_kind"],
            params_source=r["params_source"], tokens_source=r["tokens_source"],
            compute_source=r["compute_source"], notes=r.get("notes", "")))
    return out
