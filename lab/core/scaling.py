"""Scaling laws as data, compute-optimal allocation, unit conversions, and fits.

Every constant lives here once, next to its source (../shared/REFERENCES.md). The laws
do not share units: Kaplan et al. count non-embedding parameters and measure nats on
WebText2; Hoffmann et al. (and Epoch's refit of their data) count all parameters and
measure nats on MassiveText. Anything that draws two laws on one axis must say so
(``units_note``).

Shapes: functions that take ``N`` / ``D`` / ``C`` accept scalars or numpy arrays and
broadcast. Units are in the names: ``*_flops`` are FLOPs, ``pf_days`` are
petaFLOP/s-days, ``params`` are parameters, ``tokens`` are training tokens.
"""
from __future__ import annotations

import contextlib
import csv
import ctypes
import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.jobs import Job

# ---------------------------------------------------------------- units and hardware

SECONDS_PER_DAY = 86_400
FLOPS_PER_PF_DAY = 1e15 * SECONDS_PER_DAY  # 8.64e19 FLOPs
PF_DAY_SOURCE = "1 petaFLOP/s-day = 1e15 FLOP/s x 86,400 s = 8.64e19 FLOPs (Brown et al. 2020, GPT-3, App. D)"
TRAINING_FLOPS_SOURCE = "C ~= 6 N D (Kaplan et al. 2020, arXiv 2001.08361, Sec. 2.1)"

# Dense bf16/fp16 tensor-core peaks in FLOP/s (vendor data sheets, no sparsity).
GPU_PEAK_FLOPS = {
    "V100": 125e12,
    "A100": 312e12,
    "H100": 989e12,
    "H200": 989e12,
}
GPU_SOURCE = ("Dense bf16/fp16 tensor peaks: V100 125, A100 312, H100 SXM 989, H200 989 TFLOP/s "
              "(NVIDIA data sheets); real runs reach 30-50% of peak (MFU)")
DEFAULT_MFU = 0.40


def flops_to_pf_days(flops):
    return np.asarray(flops, dtype=float) / FLOPS_PER_PF_DAY if _is_array(flops) else flops / FLOPS_PER_PF_DAY


def pf_days_to_flops(pf_days):
    return np.asarray(pf_days, dtype=float) * FLOPS_PER_PF_DAY if _is_array(pf_days) else pf_days * FLOPS_PER_PF_DAY


def training_flops(params, tokens):
    """Training compute C = 6 N D in FLOPs (forward 2ND + backward 4ND)."""
    return 6.0 * _f(params) * _f(tokens)


def gpu_peak_flops(gpu: str) -> float:
    try:
        return GPU_PEAK_FLOPS[_gpu_key(gpu)]
    except KeyError:
        raise InputError(f"Unknown GPU {gpu!r}; choose one of {', '.join(GPU_PEAK_FLOPS)}.") from None


def gpu_flops(gpu: str, count: float, days: float, mfu: float = DEFAULT_MFU) -> float:
    """FLOPs delivered by ``count`` GPUs for ``days`` days at utilisation ``mfu``."""
    _check_mfu(mfu)
    if count <= 0 or days <= 0:
        raise InputError("GPU count and days must be positive.")
    return float(count) * float(days) * SECONDS_PER_DAY * gpu_peak_flops(gpu) * float(mfu)


def gpu_days(flops: float, gpu: str, mfu: float = DEFAULT_MFU) -> float:
    """GPU-days needed for ``flops`` FLOPs at utilisation ``mfu`` (divide by GPU count for days)."""
    _check_mfu(mfu)
    return float(flops) / (gpu_peak_flops(gpu) * float(mfu) * SECONDS_PER_DAY)


def _check_mfu(mfu: float) -> None:
    if not (0 < mfu <= 1):
        raise InputError(f"Utilisation (MFU) must be in (0, 1], got {mfu}.")


def _gpu_key(gpu: str) -> str:
    g = gpu.strip().upper()
    return "H100" if g.startswith("H100") else g


# ---------------------------------------------------------------- the laws


@dataclass(frozen=True)
class Law:
    """One scaling law: its constants, where they come from, and what they measure."""

    key: str
    name: str
    kind: str                    # "kaplan", "parametric" (E + A/N^a + B/D^b) or "ratio"
    constants: dict
    source: str
    params_counted: str          # which parameters N counts
    loss_units: str              # what the loss measures
    notes: str = ""

    @property
    def units(self) -> str:
        return f"N = {self.params_counted}; loss = {self.loss_units}"

    def constants_text(self) -> str:
        return ", ".join(f"{k} = {_num(v)}" for k, v in self.constants.items())


_CHINCHILLA3 = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

LAWS: dict[str, Law] = {
    "kaplan": Law(
        key="kaplan",
        name="Kaplan et al. 2020",
        kind="kaplan",
        constants=dict(N_c=8.8e13, alpha_N=0.076, D_c=5.4e13, alpha_D=0.095,
                       C_c_pf_days=3.1e8, alpha_C=0.050,
                       N_c_ND=6.4e13, D_c_ND=1.8e13, alpha_N_ND=0.076, alpha_D_ND=0.103,
                       N_opt_coef=1.3e9, N_opt_exp=0.73),
        source=("Kaplan et al. 2020, Scaling Laws for Neural Language Models, arXiv 2001.08361: "
                "L(N) = (8.8e13/N)^0.076, L(D) = (5.4e13/D)^0.095, L(C_min) = (3.1e8/C[PF-days])^0.050, "
                "L(N,D) = [(6.4e13/N)^(0.076/0.103) + 1.8e13/D]^0.103, N_opt = 1.3e9 C[PF-days]^0.73"),
        params_counted="non-embedding parameters",
        loss_units="nats/token on WebText2",
        notes="Compute-optimal tokens follow from D = C/(6 N_opt); Kaplan's allocation favours "
              "large models trained on few tokens.",
    ),
    "chinchilla-1": Law(
        key="chinchilla-1",
        name="Chinchilla approaches 1/2 (20 tokens/param)",
        kind="ratio",
        constants=dict(tokens_per_param=20.0, **_CHINCHILLA3),
        source=("Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv 2203.15556: "
                "approaches 1 and 2 give N_opt ~ C^0.5, D_opt ~ C^0.5, about 20 tokens per parameter "
                "(Chinchilla: 70B parameters, 1.4T tokens). Loss from the approach-3 fit."),
        params_counted="all parameters (incl. embeddings)",
        loss_units="nats/token on MassiveText",
        notes="Approaches 1/2 give an allocation, not a loss formula: the loss shown is the "
              "approach-3 fit evaluated at the 20:1 allocation.",
    ),
    "chinchilla-3": Law(
        key="chinchilla-3",
        name="Chinchilla approach 3 (parametric fit)",
        kind="parametric",
        constants=dict(_CHINCHILLA3),
        source=("Hoffmann et al. 2022, arXiv 2203.15556, approach 3: L(N,D) = E + A/N^alpha + B/D^beta, "
                "E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28"),
        params_counted="all parameters (incl. embeddings)",
        loss_units="nats/token on MassiveText",
        notes="These constants do NOT give 20 tokens/param: their frontier puts far more tokens "
              "per parameter at large compute (Besiroglu et al. 2024 trace this to the fit).",
    ),
    "epoch": Law(
        key="epoch",
        name="Epoch AI 2024 refit",
        kind="parametric",
        constants=dict(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658),
        source=("Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt, arXiv 2404.10102: "
                "E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658"),
        params_counted="all parameters (incl. embeddings)",
        loss_units="nats/token on MassiveText",
        notes="Refit of Chinchilla's own data (reconstructed from Hoffmann et al. Fig. 4); its "
              "frontier is close to 20 tokens/param.",
    ),
}
LAW_KEYS = tuple(LAWS)


def get_law(law) -> Law:
    """A Law from a key (or a Law, returned as is)."""
    if isinstance(law, Law):
        return law
    try:
        return LAWS[str(law)]
    except KeyError:
        raise InputError(f"Unknown law {law!r}; choose one of {', '.join(LAW_KEYS)}.") from None


def parametric_law(E: float, A: float, B: float, alpha: float, beta: float, *, key: str = "fit",
                   name: str = "Your fit", source: str = "fitted to your runs",
                   params_counted: str = "as in your CSV", loss_units: str = "as in your CSV") -> Law:
    """A Law of the form E + A/N^alpha + B/D^beta (e.g. from ``fit_runs``)."""
    return Law(key=key, name=name, kind="parametric",
               constants=dict(E=float(E), A=float(A), B=float(B), alpha=float(alpha), beta=float(beta)),
               source=source, params_counted=params_counted, loss_units=loss_units)


def units_note(laws: Iterable) -> str:
    """A visible note when laws with different units share an axis ("" when they agree)."""
    laws = [get_law(l) for l in laws]
    groups: dict = {}
    for l in laws:
        groups.setdefault(l.units, []).append(l.name)
    if len(groups) <= 1:
        return ""
    parts = "; ".join(f"{' / '.join(names)}: {units}" for units, names in groups.items())
    return f"Different units on one axis, losses not directly comparable. {parts}."


# ---------------------------------------------------------------- loss


def loss(law, params, tokens):
    """Predicted loss L(N, D) for the law (nats/token in that law's units)."""
    law = get_law(law)
    N, D = _pos(params, "parameters"), _pos(tokens, "tokens")
    k = law.constants
    if law.kind == "kaplan":
        return (np.power(k["N_c_ND"] / N, k["alpha_N_ND"] / k["alpha_D_ND"]) + k["D_c_ND"] / D) ** k["alpha_D_ND"]
    return k["E"] + k["A"] / np.power(N, k["alpha"]) + k["B"] / np.power(D, k["beta"])


def loss_vs_params(law, params):
    """Loss with unlimited data: Kaplan L(N); parametric E + A/N^alpha."""
    law = get_law(law)
    N = _pos(params, "parameters")
    k = law.constants
    if law.kind == "kaplan":
        return np.power(k["N_c"] / N, k["alpha_N"])
    return k["E"] + k["A"] / np.power(N, k["alpha"])


def loss_vs_tokens(law, tokens):
    """Loss with an unlimited model: Kaplan L(D); parametric E + B/D^beta."""
    law = get_law(law)
    D = _pos(tokens, "tokens")
    k = law.constants
    if law.kind == "kaplan":
        return np.power(k["D_c"] / D, k["alpha_D"])
    return k["E"] + k["B"] / np.power(D, k["beta"])


def loss_vs_compute(law, compute_flops):
    """Loss at the compute-optimal allocation. Kaplan: its own L(C_min) fit."""
    law = get_law(law)
    C = _pos(compute_flops, "compute")
    if law.kind == "kaplan":
        k = law.constants
        return np.power(k["C_c_pf_days"] / (C / FLOPS_PER_PF_DAY), k["alpha_C"])
    N, D = optimal_params_tokens(law, C)
    return loss(law, N, D)


# ---------------------------------------------------------------- compute-optimal allocation


def frontier_exponents(law) -> dict:
    """G, a, b of the parametric frontier N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b."""
    k = get_law(law).constants
    al, be = k["alpha"], k["beta"]
    G = (al * k["A"] / (be * k["B"])) ** (1.0 / (al + be))
    return dict(G=G, a=be / (al + be), b=al / (al + be))


def optimal_params_tokens(law, compute_flops):
    """(N_opt, D_opt) for a compute budget in FLOPs; broadcasts over arrays."""
    law = get_law(law)
    C = _pos(compute_flops, "compute")
    k = law.constants
    if law.kind == "kaplan":
        N = k["N_opt_coef"] * np.power(C / FLOPS_PER_PF_DAY, k["N_opt_exp"])
        return N, C / (6.0 * N)
    if law.kind == "ratio":
        r = k["tokens_per_param"]
        N = np.sqrt(C / (6.0 * r))
        return N, r * N
    g = frontier_exponents(law)
    return g["G"] * np.power(C / 6.0, g["a"]), np.power(C / 6.0, g["b"]) / g["G"]


@dataclass
class Allocation:
    law: str
    compute_flops: float
    pf_days: float
    params: float
    tokens: float
    tokens_per_param: float
    loss: float

    def to_json(self) -> dict:
        return dict(law=self.law, compute_flops=self.compute_flops, pf_days=self.pf_days,
                    params=self.params, tokens=self.tokens,
                    tokens_per_param=self.tokens_per_param, loss=self.loss)


def optimal(law, compute_flops: float) -> Allocation:
    """The compute-optimal allocation of one budget. Loss is L(N_opt, D_opt) of the law."""
    law = get_law(law)
    C = _scalar(compute_flops, "compute")
    N, D = optimal_params_tokens(law, C)
    N, D = float(N), float(D)
    return Allocation(law=law.key, compute_flops=C, pf_days=C / FLOPS_PER_PF_DAY, params=N, tokens=D,
                      tokens_per_param=D / N, loss=float(loss(law, N, D)))


def frontier(law, compute_flops) -> dict:
    """The compute-optimal frontier over an array of budgets: arrays C, N, D, loss."""
    C = np.atleast_1d(_pos(compute_flops, "compute"))
    N, D = optimal_params_tokens(law, C)
    return dict(compute_flops=C, params=N, tokens=D, loss=loss(law, N, D))


def iso_flop_curve(law, compute_flops: float, params=None, n: int = 81, span: float = 100.0) -> dict:
    """Loss versus N at fixed compute (D = C / 6N), with the law's optimum and the curve's minimum.

    ``params`` defaults to ``n`` log-spaced values within ``span``x either side of N_opt.
    For Kaplan and the 20:1 rule the law's optimum need not sit at the curve's minimum
    (they are separate fits): both are returned.
    """
    law = get_law(law)
    C = _scalar(compute_flops, "compute")
    N_opt, D_opt = (float(v) for v in optimal_params_tokens(law, C))
    if params is None:
        params = np.logspace(math.log10(N_opt / span), math.log10(N_opt * span), n)
    N = np.atleast_1d(_pos(params, "parameters"))
    D = C / (6.0 * N)
    L = loss(law, N, D)
    i = int(np.argmin(L))
    return dict(compute_flops=C, params=N, tokens=D, loss=L,
                opt_params=N_opt, opt_tokens=D_opt, opt_loss=float(loss(law, N_opt, D_opt)),
                min_params=float(N[i]), min_loss=float(L[i]))


# ---------------------------------------------------------------- verdict

# The verdict compares tokens per parameter with the law's optimum at the same compute
# (C = 6ND). Within a factor of 2 either way counts as about compute-optimal; for the
# 20:1 rule that is 10-40 tokens per parameter.
VERDICT_FACTOR = 2.0


@dataclass
class Verdict:
    label: str                  # "under-trained" | "about compute-optimal" | "over-trained"
    tokens_per_param: float
    optimal_tokens_per_param: float
    ratio: float                # tokens_per_param / optimal_tokens_per_param
    explanation: str


def verdict(law, params: float, tokens: float) -> Verdict:
    law = get_law(law)
    N, D = _scalar(params, "parameters"), _scalar(tokens, "tokens")
    C = 6.0 * N * D
    N_opt, D_opt = (float(v) for v in optimal_params_tokens(law, C))
    tpp, opt = D / N, D_opt / N_opt
    r = tpp / opt
    if r < 1.0 / VERDICT_FACTOR:
        label = "under-trained"
        why = "fewer tokens per parameter than the optimum: the same compute would buy a lower loss with a smaller model on more tokens"
    elif r > VERDICT_FACTOR:
        label = "over-trained"
        why = "more tokens per parameter than the optimum: compute-suboptimal for training, but a smaller, cheaper model to serve"
    else:
        label = "about compute-optimal"
        why = "within a factor of 2 of the optimum tokens per parameter"
    expl = (f"{tpp:,.1f} tokens/param vs {opt:,.1f} optimal for {law.name} at C = {_num(C)} FLOPs "
            f"({r:.2g}x): {label}, {why}. Thresholds: under < 1/{VERDICT_FACTOR:g}x, over > {VERDICT_FACTOR:g}x.")
    return Verdict(label=label, tokens_per_param=tpp, optimal_tokens_per_param=opt, ratio=r, explanation=expl)


# ---------------------------------------------------------------- the arithmetic, as text


def arithmetic_compute(params: float, tokens: float, gpu: Optional[str] = None, mfu: float = DEFAULT_MFU) -> str:
    """6ND, PF-days and (optionally) GPU-days with the numbers substituted."""
    N, D = _scalar(params, "parameters"), _scalar(tokens, "tokens")
    C = 6 * N * D
    lines = [f"C = 6 N D = 6 x {_num(N)} x {_num(D)} = {_num(C)} FLOPs",
             f"PF-days = C / 8.64e19 = {_num(C)} / 8.64e19 = {_num(C / FLOPS_PER_PF_DAY)}",
             f"tokens/param = D / N = {_num(D)} / {_num(N)} = {D / N:,.1f}"]
    if gpu:
        peak = gpu_peak_flops(gpu)
        lines.append(f"GPU-days = C / (peak x MFU x 86,400 s) = {_num(C)} / ({_num(peak)} x {mfu:g} x 86,400)"
                     f" = {_num(gpu_days(C, gpu, mfu))} {_gpu_key(gpu)}-days")
    return "\n".join(lines)


def arithmetic_gpu(gpu: str, count: float, days: float, mfu: float = DEFAULT_MFU) -> str:
    C = gpu_flops(gpu, count, days, mfu)
    peak = gpu_peak_flops(gpu)
    return (f"C = GPUs x days x 86,400 s x peak x MFU = {count:g} x {days:g} x 86,400 x {_num(peak)} x {mfu:g}"
            f" = {_num(C)} FLOPs = {_num(C / FLOPS_PER_PF_DAY)} PF-days")


def arithmetic_loss(law, params: float, tokens: float) -> str:
    law = get_law(law)
    N, D = _scalar(params, "parameters"), _scalar(tokens, "tokens")
    k = law.constants
    L = float(loss(law, N, D))
    if law.kind == "kaplan":
        t1 = (k["N_c_ND"] / N) ** (k["alpha_N_ND"] / k["alpha_D_ND"])
        t2 = k["D_c_ND"] / D
        return (f"L(N,D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D\n"
                f"       = [({_num(k['N_c_ND'])}/{_num(N)})^({k['alpha_N_ND']:g}/{k['alpha_D_ND']:g})"
                f" + {_num(k['D_c_ND'])}/{_num(D)}]^{k['alpha_D_ND']:g}\n"
                f"       = [{_num(t1)} + {_num(t2)}]^{k['alpha_D_ND']:g} = {L:.4f} nats")
    t1 = k["A"] / N ** k["alpha"]
    t2 = k["B"] / D ** k["beta"]
    pre = "(approach-3 fit) " if law.kind == "ratio" else ""
    return (f"{pre}L(N,D) = E + A/N^alpha + B/D^beta\n"
            f"       = {k['E']:g} + {k['A']:g}/{_num(N)}^{k['alpha']:g} + {k['B']:g}/{_num(D)}^{k['beta']:g}\n"
            f"       = {k['E']:g} + {t1:.4f} + {t2:.4f} = {L:.4f} nats")


def arithmetic_optimal(law, compute_flops: float) -> str:
    """The compute-optimal allocation with the numbers substituted."""
    law = get_law(law)
    a = optimal(law, compute_flops)
    C = a.compute_flops
    k = law.constants
    lines = [f"C = {_num(C)} FLOPs = {_num(C)} / 8.64e19 = {_num(a.pf_days)} PF-days"]
    if law.kind == "kaplan":
        lines += [f"N_opt = 1.3e9 x C[PF-days]^0.73 = 1.3e9 x {_num(a.pf_days)}^0.73 = {_num(a.params)}",
                  f"D = C / (6 N_opt) = {_num(C)} / (6 x {_num(a.params)}) = {_num(a.tokens)}"]
    elif law.kind == "ratio":
        r = k["tokens_per_param"]
        lines += [f"D = {r:g} N and C = 6 N D = {6 * r:g} N^2",
                  f"N_opt = sqrt(C / {6 * r:g}) = sqrt({_num(C)} / {6 * r:g}) = {_num(a.params)}",
                  f"D_opt = {r:g} x {_num(a.params)} = {_num(a.tokens)}"]
    else:
        g = frontier_exponents(law)
        al, be = k["alpha"], k["beta"]
        lines += [f"G = (alpha A / (beta B))^(1/(alpha+beta)) = ({al:g} x {k['A']:g} / ({be:g} x {k['B']:g}))"
                  f"^(1/{al + be:.4g}) = {g['G']:.4g}",
                  f"a = beta/(alpha+beta) = {g['a']:.4f};  b = alpha/(alpha+beta) = {g['b']:.4f}",
                  f"N_opt = G (C/6)^a = {g['G']:.4g} x {_num(C / 6)}^{g['a']:.4f} = {_num(a.params)}",
                  f"D_opt = G^-1 (C/6)^b = {_num(C / 6)}^{g['b']:.4f} / {g['G']:.4g} = {_num(a.tokens)}"]
    lines.append(f"tokens/param = {_num(a.tokens)} / {_num(a.params)} = {a.tokens_per_param:,.1f}")
    lines.append(arithmetic_loss(law, a.params, a.tokens))
    return "\n".join(lines)


# ---------------------------------------------------------------- runs from CSV

_PARAM_COLS = ("params", "parameters", "n", "n_params", "num_params", "total_params")
_NONEMB_COLS = ("non_embedding_params", "nonembedding_params", "non_embedding_parameters")
_TOKEN_COLS = ("tokens", "d", "n_tokens", "num_tokens", "training_tokens")
_LOSS_COLS = ("loss", "val_loss", "eval_loss", "validation_loss", "final_loss")
_COMPUTE_COLS = ("compute", "flops", "c", "compute_flops", "training_flops")
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_NUM_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kKmMbBgGtT]?)\s*$")


@dataclass
class BadRow:
    line: int                  # 1-based line number in the file
    reason: str
    text: str

    def to_json(self) -> dict:
        return dict(line=self.line, reason=self.reason, text=self.text)


@dataclass
class Runs:
    """Good rows of a runs CSV as float arrays, plus the bad rows with reasons."""

    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    compute_flops: np.ndarray      # from the file where given, else 6ND
    lines: np.ndarray              # line number of each good row
    bad_rows: list = field(default_factory=list)
    columns: dict = field(default_factory=dict)   # role -> column name used
    source: str = ""

    def __len__(self) -> int:
        return len(self.params)


def read_runs(path, param_column: Optional[str] = None) -> Runs:
    """Read a CSV of runs; bad rows are listed and skipped (never raised)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"No such file: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a folder, not a CSV file.") from None
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a UTF-8 text CSV file.") from None
    except OSError as err:
        raise InputError(f"Cannot read {p}: {err.strerror or err}") from None
    return parse_runs(text, source=str(p), param_column=param_column)


def parse_runs(text: str, source: str = "<text>", param_column: Optional[str] = None) -> Runs:
    """Parse runs CSV text: columns params/parameters, tokens, loss/val_loss, optional compute/flops.

    '#' lines are comments (the zoo's ``models/scaling_runs.csv``). With both ``params`` and
    ``non_embedding_params`` present, ``params`` (all parameters, as Chinchilla counts) is
    used unless ``param_column`` says otherwise.
    """
    text = text.lstrip("\ufeff")
    numbered = [(i + 1, ln) for i, ln in enumerate(text.splitlines())
                if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise InputError(f"{source} holds no header and no rows.")
    rows = list(csv.reader([ln for _, ln in numbered]))
    header = [h.strip().lower() for h in rows[0]]

    def pick(names, role, required=True):
        for n in names:
            if n in header:
                return n
        if required:
            raise InputError(f"{source}: no {role} column (expected one of {', '.join(names[:3])}); "
                             f"header is {', '.join(header)}.")
        return None

    if param_column:
        if param_column.lower() not in header:
            raise InputError(f"{source}: no column {param_column!r}; header is {', '.join(header)}.")
        pcol = param_column.lower()
    else:
        pcol = pick(_PARAM_COLS, "parameters", required=False) or pick(_NONEMB_COLS, "parameters")
    tcol = pick(_TOKEN_COLS, "tokens")
    lcol = pick(_LOSS_COLS, "loss")
    ccol = pick(_COMPUTE_COLS, "compute", required=False)
    idx = {role: header.index(c) for role, c in
           (("params", pcol), ("tokens", tcol), ("loss", lcol), ("compute", ccol)) if c}

    good: dict = {k: [] for k in ("params", "tokens", "loss", "compute", "line")}
    bad: list[BadRow] = []
    for (line, raw), row in zip(numbered[1:], rows[1:]):
        vals, reasons = {}, []
        for role, j in idx.items():
            cell = row[j].strip() if j < len(row) else ""
            if role == "compute" and cell == "":
                vals[role] = math.nan       # optional
                continue
            v, why = _parse_number(cell)
            if why:
                reasons.append(f"{header[j]}: {why}")
            else:
                vals[role] = v
        if reasons:
            bad.append(BadRow(line, "; ".join(reasons), raw.strip()))
            continue
        good["params"].append(vals["params"])
        good["tokens"].append(vals["tokens"])
        good["loss"].append(vals["loss"])
        good["compute"].append(vals.get("compute", math.nan))
        good["line"].append(line)
    N = np.array(good["params"], dtype=float)
    D = np.array(good["tokens"], dtype=float)
    C = np.array(good["compute"], dtype=float)
    C = np.where(np.isfinite(C), C, 6.0 * N * D)
    cols = {"params": pcol, "tokens": tcol, "loss": lcol}
    if ccol:
        cols["compute"] = ccol
    return Runs(params=N, tokens=D, loss=np.array(good["loss"], dtype=float), compute_flops=C,
                lines=np.array(good["line"], dtype=int), bad_rows=bad, columns=cols, source=source)


def _parse_number(cell: str):
    """(value, None) or (None, reason). Accepts 1e9, 1.5B, 70M style suffixes."""
    if cell == "":
        return None, "missing value"
    m = _NUM_RE.match(cell)
    if not m:
        low = cell.strip().lower()
        if low in ("nan", "inf", "+inf", "-inf", "infinity"):
            return None, f"not a finite number ({cell!r})"
        return None, f"not a number ({cell!r})"
    v = float(m.group(1)) * (_SUFFIX[m.group(2).lower()] if m.group(2) else 1.0)
    if not math.isfinite(v):
        return None, f"not a finite number ({cell!r})"
    if v == 0:
        return None, "zero"
    if v < 0:
        return None, f"negative ({cell})"
    return v, None


# ---------------------------------------------------------------- the Chinchilla-style fit

HUBER_DELTA = 1e-3
FIT_SOURCE = ("Hoffmann et al. 2022, arXiv 2203.15556, Sec. 3.3 / App. D.2: Huber loss (delta 1e-3) on "
              "log loss, L-BFGS, log-sum-exp form, grid of initialisations")
# Chinchilla's grid (App. D.2): alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
# a, b in {0, 5, ..., 25}: 4,500 starting points for (e, a, b, alpha, beta) where
# E = exp(e), A = exp(a), B = exp(b).
GRID_ALPHA = np.arange(0.0, 2.01, 0.5)
GRID_E = np.arange(-1.0, 1.01, 0.5)
GRID_AB = np.arange(0.0, 25.01, 5.0)
FIT_NAMES = ("E", "A", "B", "alpha", "beta")


def _init_grid() -> np.ndarray:
    e, a, b, al, be = np.meshgrid(GRID_E, GRID_AB, GRID_AB, GRID_ALPHA, GRID_ALPHA, indexing="ij")
    return np.stack([e.ravel(), a.ravel(), b.ravel(), al.ravel(), be.ravel()], axis=1)


def _objective_batch(theta: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray, w=None) -> np.ndarray:
    """Huber objective for many parameter rows at once: theta[k, 5] -> obj[k]."""
    e, a, b, al, be = (theta[:, i:i + 1] for i in range(5))
    z1 = a - al * x[None, :]
    z2 = b - be * y[None, :]
    z3 = np.broadcast_to(e, z1.shape)
    m = np.maximum(np.maximum(z1, z2), z3)
    pred = m + np.log(np.exp(z1 - m) + np.exp(z2 - m) + np.exp(z3 - m))
    h = _huber(pred - t[None, :])
    return (h * w[None, :]).sum(axis=1) if w is not None else h.sum(axis=1)


def _huber(r):
    ar = np.abs(r)
    return np.where(ar <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (ar - 0.5 * HUBER_DELTA))


def _objective_grad(theta: np.ndarray, x, y, t, w):
    """Huber objective and its gradient for one parameter vector (the L-BFGS inner loop)."""
    e, a, b, al, be = theta
    z1 = a - al * x
    z2 = b - be * y
    m = np.maximum(np.maximum(z1, z2), e)
    p1, p2, p3 = np.exp(z1 - m), np.exp(z2 - m), np.exp(e - m)
    s = p1 + p2 + p3
    r = m + np.log(s) - t
    c = np.clip(r, -HUBER_DELTA, HUBER_DELTA)      # Huber derivative; c (r - c/2) is the Huber value
    f = np.dot(c * (r - 0.5 * c), w)
    dr = c * w / s
    g1, g2 = dr * p1, dr * p2
    grad = np.array([np.dot(dr, p3), g1.sum(), g2.sum(), -np.dot(g1, x), -np.dot(g2, y)])
    return float(f), grad


@contextlib.contextmanager
def _blas_single_thread():
    """Run OpenBLAS on one thread for the duration (Linux; a no-op elsewhere).

    scipy's L-BFGS-B calls BLAS/LAPACK on 5x5 problems; OpenBLAS's worker threads then cost
    milliseconds per iteration in wake-ups, and far more when other processes share the
    cores (measured: a 40-run fit took 44 s on a busy 2-core machine, 3.7 s on one thread).
    This is what threadpoolctl does, without the dependency.
    """
    restore = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.split()[-1].lower()})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("scipy_openblas_{}_num_threads64_", "scipy_openblas_{}_num_threads",
                       "openblas_{}_num_threads64_", "openblas_{}_num_threads"):
            get, set_ = getattr(lib, suffix.format("get"), None), getattr(lib, suffix.format("set"), None)
            if get is not None and set_ is not None:
                restore.append((set_, int(get())))
                set_(1)
                break
    try:
        yield
    finally:
        for set_, n in restore:
            set_(n)


# Tighter buys nothing measurable; looser (1e-8) lets bootstrap refits stop near their warm start
# and shrinks the intervals (measured).
FIT_GTOL, FIT_FTOL = 1e-10, 1e-12


def _refine(theta0, x, y, t, w, maxiter=500):
    from scipy.optimize import minimize

    res = minimize(_objective_grad, np.asarray(theta0, dtype=float), args=(x, y, t, w), jac=True,
                   method="L-BFGS-B", options=dict(maxiter=maxiter, gtol=FIT_GTOL, ftol=FIT_FTOL, maxcor=20))
    return res.x, float(res.fun)


def _theta_to_constants(theta) -> dict:
    e, a, b, al, be = (float(v) for v in theta)
    return dict(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=al, beta=be)


@dataclass
class Fit:
    """A fitted E + A/N^alpha + B/D^beta with bootstrap intervals and diagnostics."""

    constants: dict                # E, A, B, alpha, beta
    intervals: dict                # name -> (low, high), percentile bootstrap at ``level``
    level: float
    n_runs: int
    bootstrap_samples: int
    objective: float
    residuals: np.ndarray          # log(observed) - log(predicted), per good run
    predicted: np.ndarray          # predicted loss per good run
    runs: Runs
    ranges: dict                   # params/tokens/compute_flops -> (min, max) of the fitted runs
    holdout: dict                  # extrapolation check: fit without the largest-compute runs
    starts: int                    # grid points refined with L-BFGS
    grid_size: int
    elapsed_s: float
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)   # what the user should doubt, in words
    source: str = FIT_SOURCE

    def law(self) -> Law:
        c = self.constants
        return parametric_law(c["E"], c["A"], c["B"], c["alpha"], c["beta"],
                              source=f"fitted to {self.n_runs} runs from {self.runs.source or 'your CSV'}")

    def predict(self, params, tokens):
        return loss(self.law(), params, tokens)

    def extrapolation_warning(self, params, tokens) -> str:
        """Non-empty when (N, D, 6ND) lies outside the range of the fitted runs."""
        N, D = _scalar(params, "parameters"), _scalar(tokens, "tokens")
        out = []
        for name, v in (("params", N), ("tokens", D), ("compute_flops", 6 * N * D)):
            lo, hi = self.ranges[name]
            if v > hi:
                out.append(f"{name.replace('_flops', '')} {_num(v)} is {v / hi:.3g}x the largest fitted ({_num(hi)})")
            elif v < lo:
                out.append(f"{name.replace('_flops', '')} {_num(v)} is {lo / v:.3g}x below the smallest fitted ({_num(lo)})")
        if not out:
            return ""
        return "Extrapolation: " + "; ".join(out) + ". Predictions outside the fitted range are guesses."

    def to_json(self) -> dict:
        return dict(
            law="E + A/N^alpha + B/D^beta",
            constants=self.constants,
            intervals={k: list(v) for k, v in self.intervals.items()},
            level=self.level,
            n_runs=self.n_runs,
            bootstrap_samples=self.bootstrap_samples,
            objective=self.objective,
            residuals_rms=float(np.sqrt(np.mean(self.residuals ** 2))) if self.n_runs else None,
            residuals=[dict(line=int(l), params=float(n), tokens=float(d), loss=float(o), predicted=float(p),
                            log_residual=float(r))
                       for l, n, d, o, p, r in zip(self.runs.lines, self.runs.params, self.runs.tokens,
                                                   self.runs.loss, self.predicted, self.residuals)],
            ranges={k: list(v) for k, v in self.ranges.items()},
            holdout=self.holdout,
            frontier=frontier_exponents(self.law()),
            bad_rows=[b.to_json() for b in self.runs.bad_rows],
            columns=self.runs.columns,
            starts=self.starts,
            grid_size=self.grid_size,
            elapsed_s=self.elapsed_s,
            timings=self.timings,
            warnings=self.warnings,
            source=self.source,
        )


MIN_RUNS = 6


def fit_runs(runs: Runs, *, bootstrap: int = 200, level: float = 0.95, starts: int = 32,
             holdout_fraction: float = 0.1, seed: int = 0, job: Optional[Job] = None) -> Fit:
    """Fit L = E + A/N^alpha + B/D^beta the Chinchilla way.

    Huber (delta 1e-3) on log loss in the log-sum-exp form
    log L = LSE(a - alpha log N, b - beta log D, e). The whole 4,500-point grid of starting
    points is scored in one vectorised pass; L-BFGS then refines the ``starts`` best distinct
    points (refining all 4,500 gives the same optimum at ~100x the cost). Intervals: percentile
    bootstrap over runs (resampled with replacement, warm-started from the best fit and the
    next-best grid optima). Extrapolation check: refit without the ``holdout_fraction``
    largest-compute runs and report the error predicting them.
    """
    job = Job.ensure(job)
    import scipy.optimize  # noqa: F401  (load its OpenBLAS before pinning the thread count)

    with _blas_single_thread():
        return _fit_runs(runs, bootstrap, level, starts, holdout_fraction, seed, job)


def _fit_runs(runs, bootstrap, level, starts, holdout_fraction, seed, job) -> Fit:
    t0 = time.perf_counter()
    n = len(runs)
    if n < MIN_RUNS:
        raise InputError(f"Need at least {MIN_RUNS} good runs to fit 5 constants; got {n}"
                         + (f" ({len(runs.bad_rows)} bad rows skipped)." if runs.bad_rows else "."))
    x, y, t = np.log(runs.params), np.log(runs.tokens), np.log(runs.loss)
    w1 = np.ones(n)

    job.progress(0.0, "scoring the grid of starting points")
    grid = _init_grid()
    scores = np.concatenate([_objective_batch(chunk, x, y, t) for chunk in np.array_split(grid, 8)])
    order = np.argsort(scores, kind="stable")[:max(1, starts)]

    timings = {"grid_s": time.perf_counter() - t0}
    job.progress(0.05, "L-BFGS from the best starting points")
    results = []
    for i, k in enumerate(order):
        results.append(_refine(grid[k], x, y, t, w1))
        job.progress(0.05 + 0.15 * (i + 1) / len(order))
    results.sort(key=lambda r: r[1])
    best, best_f = results[0]
    # distinct local optima for warm-starting the bootstrap
    # (only optima nearly as good as the best: worse local optima never win a resample)
    warm = [best]
    for th, f in results[1:]:
        if f <= best_f * 1.25 + 1e-12 and all(np.max(np.abs(th - w)) > 1e-2 for w in warm):
            warm.append(th)
        if len(warm) >= 3:
            break

    timings["refine_s"] = time.perf_counter() - t0 - timings["grid_s"]
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(bootstrap):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        cands = [_refine(th, x, y, t, w, maxiter=300) for th in warm]
        samples.append(min(cands, key=lambda r: r[1])[0])
        job.progress(0.2 + 0.7 * (i + 1) / max(1, bootstrap), f"bootstrap {i + 1}/{bootstrap}")
    constants = _theta_to_constants(best)
    intervals = {}
    if samples:
        S = np.array([list(_theta_to_constants(s).values()) for s in samples])
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        for j, name in enumerate(FIT_NAMES):
            lo, hi = np.percentile(S[:, j], q)
            intervals[name] = (float(min(lo, constants[name])), float(max(hi, constants[name])))

    timings["bootstrap_s"] = time.perf_counter() - t1
    job.progress(0.92, "extrapolation check")
    t1 = time.perf_counter()
    holdout = _holdout_check(runs, x, y, t, warm, holdout_fraction)
    timings["holdout_s"] = time.perf_counter() - t1
    law = parametric_law(**constants)
    pred = loss(law, runs.params, runs.tokens)
    ranges = {k: (float(v.min()), float(v.max())) for k, v in
              (("params", runs.params), ("tokens", runs.tokens), ("compute_flops", runs.compute_flops))}
    warnings = _fit_warnings(constants, intervals, runs)
    job.progress(1.0, "done")
    return Fit(warnings=warnings, constants=constants, intervals=intervals, level=level, n_runs=n, bootstrap_samples=len(samples),
               objective=best_f, residuals=t - np.log(pred), predicted=pred, runs=runs, ranges=ranges,
               holdout=holdout, starts=len(order), grid_size=len(grid), elapsed_s=time.perf_counter() - t0,
               timings=timings)


def _fit_warnings(constants: dict, intervals: dict, runs: Runs) -> list:
    out = []
    if constants["E"] < 0.01 * float(runs.loss.min()):
        out.append(f"E (the irreducible loss) went to {constants['E']:.2g}: these runs do not pin it down "
                   "(too narrow a range, or repeated data), so A, alpha, B, beta absorb it. "
                   "Extrapolations from this fit are weak.")
    for k in ("alpha", "beta"):
        if k in intervals:
            lo, hi = intervals[k]
            if hi - lo > max(0.2, abs(constants[k])):
                out.append(f"{k} is poorly determined: its interval [{lo:.3g}, {hi:.3g}] is wider than the value.")
    if len(np.unique(runs.params)) < 3 or len(np.unique(runs.tokens)) < 3:
        out.append("Fewer than 3 distinct model sizes or token counts: N and D effects cannot be separated well.")
    return out


def _holdout_check(runs: Runs, x, y, t, warm, fraction: float) -> dict:
    n = len(runs)
    k = int(round(n * fraction))
    if k < 1 or n - k < MIN_RUNS:
        return dict(done=False, reason=f"too few runs to hold out (need > {MIN_RUNS})")
    order = np.argsort(runs.compute_flops)
    train, held = order[:-k], order[-k:]
    w = np.zeros(n)
    w[train] = 1.0
    th = min((_refine(th0, x, y, t, w) for th0 in warm), key=lambda r: r[1])[0]
    law = parametric_law(**_theta_to_constants(th))
    pred = loss(law, runs.params[held], runs.tokens[held])
    rel = (pred - runs.loss[held]) / runs.loss[held]
    return dict(done=True, held_out=int(k), held_out_lines=[int(v) for v in runs.lines[held]],
                fit_compute_max=float(runs.compute_flops[train].max()),
                held_compute_min=float(runs.compute_flops[held].min()),
                mean_abs_rel_error=float(np.mean(np.abs(rel))), max_abs_rel_error=float(np.max(np.abs(rel))),
                note=f"Fitted without the {k} largest-compute runs, then predicted them: mean |error| "
                     f"{np.mean(np.abs(rel)) * 100:.2f}% of the loss.")


def synthetic_runs(law="chinchilla-3", n: int = 300, noise: float = 0.01, seed: int = 0,
                   params_range=(1e7, 1e10), tokens_range=(1e8, 1e11)) -> Runs:
    """Runs drawn from a known law with multiplicative log-normal noise (for tests and demos)."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(*np.log(params_range), n))
    D = np.exp(rng.uniform(*np.log(tokens_range), n))
    L = loss(law, N, D) * np.exp(rng.normal(0.0, noise, n))
    return Runs(params=N, tokens=D, loss=L, compute_flops=6 * N * D, lines=np.arange(1, n + 1),
                source=f"synthetic from {get_law(law).key}")


# ---------------------------------------------------------------- known models

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


# ---------------------------------------------------------------- small helpers


def _is_array(v) -> bool:
    return isinstance(v, (np.ndarray, list, tuple))


def _f(v):
    return np.asarray(v, dtype=float) if _is_array(v) else float(v)


def _pos(v, what: str):
    a = _f(v)
    if _is_array(a):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise InputError(f"{what.capitalize()} must be positive finite numbers.")
        return a
    if not math.isfinite(a) or a <= 0:
        raise InputError(f"{what.capitalize()} must be a positive number, got {v!r}.")
    return a


def _scalar(v, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(f"{what.capitalize()} must be a number, got {v!r}.") from None
    return float(_pos(f, what))


def _num(v: float) -> str:
    """Compact number for the arithmetic text: 3.14e+23 -> 3.14e23, 1234.5 -> 1,234.5."""
    v = float(v)
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        m, e = f"{v:.3e}".split("e")
        m = m.rstrip("0").rstrip(".")
        return f"{m}e{int(e)}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.4g}"
