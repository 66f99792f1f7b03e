"""`tvlab scaling optimal|loss|compute|fit`: the scaling-law panel's headless twin."""
from __future__ import annotations

import sys

from lab.cli import print_json
from lab.core import scaling as sc
from lab.core.errors import InputError
from lab.core.units import parse_number

NAME = "scaling"
HELP = "scaling laws: compute-optimal allocation, predicted loss, 6ND, fit your own runs"


def _one_line_error(parser):
    def error(message):
        print(f"tvlab: error: {parser.prog}: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)
    return error


def add_arguments(parser) -> None:
    parser.error = _one_line_error(parser)
    sub = parser.add_subparsers(dest="scaling_command", metavar="SUBCOMMAND")
    laws = ", ".join(sc.LAW_KEYS)

    p = sub.add_parser("optimal", help="compute-optimal parameters and tokens for a FLOP budget")
    p.add_argument("--compute", required=True, help="training compute in FLOPs (e.g. 3.14e23)")
    p.add_argument("--law", default="chinchilla-1", help=f"one of {laws} (default chinchilla-1)")
    p.add_argument("--arithmetic", action="store_true", help="also show the formulas with numbers")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("loss", help="predicted loss for N parameters trained on D tokens")
    p.add_argument("--params", required=True, help="parameters N (e.g. 70e9 or 70B)")
    p.add_argument("--tokens", required=True, help="training tokens D (e.g. 1.4e12 or 1.4T)")
    p.add_argument("--law", default="chinchilla-3", help=f"one of {laws} (default chinchilla-3)")
    p.add_argument("--arithmetic", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("compute", help="6ND FLOPs, PF-days, GPU-days and a tokens/param verdict")
    p.add_argument("--params", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--law", default="chinchilla-1", help=f"rule for the verdict: {laws}")
    p.add_argument("--gpu", default="A100", help=f"one of {', '.join(sc.GPU_PEAK_FLOPS)} (default A100)")
    p.add_argument("--mfu", default=str(sc.DEFAULT_MFU), help="model FLOPs utilisation (default 0.4)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("fit", help="fit L = E + A/N^alpha + B/D^beta to a CSV of runs")
    p.add_argument("file", help="CSV with params, tokens, loss (compute optional)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--starts", type=int, default=32, help="best grid points refined with L-BFGS (default 32)")
    p.add_argument("--param-column", default=None, help="which column counts parameters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    for s in sub.choices.values():
        s.error = _one_line_error(s)


def run(args) -> int:
    cmd = getattr(args, "scaling_command", None)
    if cmd == "optimal":
        return _optimal(args)
    if cmd == "loss":
        return _loss(args)
    if cmd == "compute":
        return _compute(args)
    if cmd == "fit":
        return _fit(args)
    raise InputError("Choose a subcommand: optimal, loss, compute or fit (tvlab scaling --help).")


def _number(text: str, what: str) -> float:
    try:
        return parse_number(text)
    except ValueError as why:
        raise InputError(f"--{what}: {why}.") from None


def _optimal(args) -> int:
    law = sc.get_law(args.law)
    a = sc.optimal(law, _number(args.compute, "compute"))
    if args.json:
        out = a.to_json()
        if args.arithmetic:
            out["arithmetic"] = sc.arithmetic_optimal(law, a.compute_flops)
        print_json(out)
        return 0
    print(f"{law.name}  ({law.units})")
    print(f"  compute        {a.compute_flops:.4g} FLOPs = {a.pf_days:,.4g} PF-days")
    print(f"  parameters     {a.params:.4g}")
    print(f"  tokens         {a.tokens:.4g}")
    print(f"  tokens/param   {a.tokens_per_param:,.1f}")
    print(f"  loss           {a.loss:.4f} nats/token")
    if law.notes:
        print(f"  note: {law.notes}")
    print(f"  source: {law.source}")
    if args.arithmetic:
        print("\n" + sc.arithmetic_optimal(law, a.compute_flops))
    return 0


def _loss(args) -> int:
    law = sc.get_law(args.law)
    N, D = _number(args.params, "params"), _number(args.tokens, "tokens")
    L = float(sc.loss(law, N, D))
    v = sc.verdict(law, N, D)
    if args.json:
        out = dict(law=law.key, params=N, tokens=D, loss=L, compute_flops=6 * N * D,
                   tokens_per_param=D / N, verdict=v.label, units=law.units, source=law.source)
        if args.arithmetic:
            out["arithmetic"] = sc.arithmetic_loss(law, N, D)
        print_json(out)
        return 0
    print(f"{law.name}: L({N:.4g}, {D:.4g}) = {L:.4f} nats/token  ({law.units})")
    print(f"  {v.explanation}")
    if args.arithmetic:
        print("\n" + sc.arithmetic_loss(law, N, D))
    return 0


def _compute(args) -> int:
    law = sc.get_law(args.law)
    N, D = _number(args.params, "params"), _number(args.tokens, "tokens")
    mfu = _number(args.mfu, "mfu")
    C = float(sc.training_flops(N, D))
    gd = sc.gpu_days(C, args.gpu, mfu)
    v = sc.verdict(law, N, D)
    if args.json:
        print_json(dict(params=N, tokens=D, compute_flops=C, pf_days=C / sc.FLOPS_PER_PF_DAY,
                        gpu=args.gpu, mfu=mfu, gpu_days=gd, tokens_per_param=D / N,
                        optimal_tokens_per_param=v.optimal_tokens_per_param, verdict=v.label,
                        law=law.key, arithmetic=sc.arithmetic_compute(N, D, args.gpu, mfu)))
        return 0
    print(sc.arithmetic_compute(N, D, args.gpu, mfu))
    print(v.explanation)
    return 0


def _fit(args) -> int:
    if args.bootstrap < 0:
        raise InputError("--bootstrap must be 0 or more.")
    if args.starts < 1:
        raise InputError("--starts must be 1 or more.")
    runs = sc.read_runs(args.file, param_column=args.param_column)
    fit = sc.fit_runs(runs, bootstrap=args.bootstrap, starts=args.starts, seed=args.seed)
    if args.json:
        print_json(fit.to_json())
        return 0
    c, iv = fit.constants, fit.intervals
    print(f"Fit of L = E + A/N^alpha + B/D^beta to {fit.n_runs} runs from {runs.source} "
          f"({fit.elapsed_s:.2f} s; {fit.starts} of {fit.grid_size} grid starts refined)")
    for k in sc.FIT_NAMES:
        ci = f"  [{iv[k][0]:.4g}, {iv[k][1]:.4g}]" if k in iv else ""
        print(f"  {k:<6} {c[k]:.4g}{ci}")
    if iv:
        print(f"  ({fit.level:.0%} percentile bootstrap intervals, {fit.bootstrap_samples} resamples)")
    g = sc.frontier_exponents(fit.law())
    print(f"  frontier: N_opt ~ C^{g['a']:.3f}, D_opt ~ C^{g['b']:.3f}")
    rms = float((fit.residuals ** 2).mean() ** 0.5)
    print(f"  residuals: rms {rms:.4f} in log loss")
    if fit.holdout.get("done"):
        print(f"  extrapolation check: {fit.holdout['note']}")
    for w in fit.warnings:
        print(f"  warning: {w}")
    if runs.bad_rows:
        print(f"  {len(runs.bad_rows)} bad rows skipped:")
        for b in runs.bad_rows:
            print(f"    line {b.line}: {b.reason}")
    return 0
