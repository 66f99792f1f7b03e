"""The Chinchilla-style fit of E + A/N^alpha + B/D^beta to runs, with bootstrap intervals."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.scaling.compute import _num, _scalar
from lab.core.scaling.laws import Law, frontier_exponents, get_law, loss, parametric_law
from lab.core.scaling.runs import Runs

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


def init_grid() -> np.ndarray:
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


def _blas_single_thread():
    """BLAS on one thread for the duration (threadpoolctl: OpenBLAS, MKL, BLIS, any platform).

    scipy's L-BFGS-B calls BLAS/LAPACK on 5x5 problems; a BLAS's worker threads then cost
    milliseconds per iteration in wake-ups, and far more when other processes share the
    cores (measured: a 40-run fit took 44 s on a busy 2-core machine, 3.7 s on one thread).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


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
    grid = init_grid()
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
