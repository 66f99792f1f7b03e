"""The scaling laws as data; loss, the compute-optimal frontier and the training verdict.

The laws do not share units: Kaplan et al. count non-embedding parameters and measure
nats on WebText2; Hoffmann et al. (and Epoch's refit of their data) count all parameters
and measure nats on MassiveText. Anything that draws two laws on one axis must say so
(``units_note``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from lab.core.errors import InputError
from lab.core.scaling.compute import FLOPS_PER_PF_DAY, _num, _pos, _scalar


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
