"""Scaling laws as data, compute-optimal allocation, runs from CSV, and fits.

Every constant lives once, next to its source (../shared/REFERENCES.md). What lives where:

- ``compute``: 6ND, PF-days, GPU peaks and GPU-days (units themselves: ``lab.core.units``)
- ``laws``: the laws, loss, the compute-optimal frontier, the training verdict
- ``arithmetic``: each answer's arithmetic as text, numbers substituted
- ``runs``: runs read from a CSV (bad rows listed, not raised)
- ``fit``: the Chinchilla-style fit with bootstrap intervals; synthetic runs
- ``known_models``: published models and the zoo's own sweep
"""
from lab.core.scaling.arithmetic import arithmetic_compute, arithmetic_gpu, arithmetic_loss, arithmetic_optimal
from lab.core.scaling.compute import (
                                      DEFAULT_MFU,
                                      FLOPS_PER_PF_DAY,
                                      GPU_PEAK_FLOPS,
                                      GPU_SOURCE,
                                      PF_DAY_SOURCE,
                                      TRAINING_FLOPS_SOURCE,
                                      flops_to_pf_days,
                                      gpu_days,
                                      gpu_flops,
                                      gpu_peak_flops,
                                      pf_days_to_flops,
                                      training_flops,
)
from lab.core.scaling.fit import (
                                      FIT_NAMES,
                                      FIT_SOURCE,
                                      GRID_AB,
                                      GRID_ALPHA,
                                      GRID_E,
                                      HUBER_DELTA,
                                      MIN_RUNS,
                                      Fit,
                                      fit_runs,
                                      init_grid,
                                      synthetic_runs,
)
from lab.core.scaling.known_models import KnownModel, known_models_path, load_known_models, zoo_sweep_path
from lab.core.scaling.laws import (
                                      LAW_KEYS,
                                      LAWS,
                                      VERDICT_FACTOR,
                                      Allocation,
                                      Law,
                                      Verdict,
                                      frontier,
                                      frontier_exponents,
                                      get_law,
                                      iso_flop_curve,
                                      loss,
                                      loss_vs_compute,
                                      loss_vs_params,
                                      loss_vs_tokens,
                                      optimal,
                                      optimal_params_tokens,
                                      parametric_law,
                                      units_note,
                                      verdict,
)
from lab.core.scaling.runs import BadRow, Runs, parse_runs, read_runs

__all__ = [
    "arithmetic_compute", "arithmetic_gpu", "arithmetic_loss", "arithmetic_optimal",
    "DEFAULT_MFU", "FLOPS_PER_PF_DAY", "GPU_PEAK_FLOPS", "GPU_SOURCE", "PF_DAY_SOURCE", "TRAINING_FLOPS_SOURCE",
    "flops_to_pf_days", "gpu_days", "gpu_flops", "gpu_peak_flops", "pf_days_to_flops", "training_flops",
    "FIT_NAMES", "FIT_SOURCE", "GRID_AB", "GRID_ALPHA", "GRID_E", "HUBER_DELTA", "MIN_RUNS", "Fit",
    "fit_runs", "init_grid", "synthetic_runs",
    "KnownModel", "known_models_path", "load_known_models", "zoo_sweep_path",
    "LAW_KEYS", "LAWS", "VERDICT_FACTOR", "Allocation", "Law", "Verdict", "frontier", "frontier_exponents",
    "get_law", "iso_flop_curve", "loss", "loss_vs_compute", "loss_vs_params", "loss_vs_tokens", "optimal",
    "optimal_params_tokens", "parametric_law", "units_note", "verdict",
    "BadRow", "Runs", "parse_runs", "read_runs",
]
