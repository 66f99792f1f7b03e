"""The arithmetic behind each answer, as text with the numbers substituted."""
from __future__ import annotations

from typing import Optional

from lab.core.scaling.compute import (
    DEFAULT_MFU,
    FLOPS_PER_PF_DAY,
    _gpu_key,
    _num,
    _scalar,
    gpu_days,
    gpu_flops,
    gpu_peak_flops,
)
from lab.core.scaling.laws import frontier_exponents, get_law, loss, optimal
from lab.core.units import format_flops


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
            f" = {format_flops(C)}")


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
