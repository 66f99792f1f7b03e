"""One step of a decode as the panel shows it: candidates, waterfall and the draw.

``build_view`` turns a step's raw logits into a ``StepView``. For a sampled token it
replays ``torch.multinomial``'s exponential race from the generator state saved before
the draw: token i gets ``p_i / E_i`` with ``E_i ~ Exp(1)``, the largest wins. The
winner's margin ``M = min_i E_i / p_i`` gives ``v = 1 - exp(-M)``, a uniform number
independent of the winner, so ``u = (mass of the tokens before the winner) + p_winner * v``
lands in the winner's slice of the cumulative distribution: "where the draw fell".
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from lab.core import sampling
from lab.core.decoding.snapshots import Candidate, Draw, StepView
from lab.core.sampling import SamplingSettings

N_CANDIDATES = 20


def token_text(tokenizer, tid: int) -> str:
    """One token as text (its piece when it decodes to nothing)."""
    if tokenizer is None:
        return f"<{tid}>"
    try:
        t = tokenizer.decode([int(tid)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    except Exception:
        t = ""
    if not t:
        toks = tokenizer.convert_ids_to_tokens([int(tid)])
        t = toks[0] if toks and toks[0] is not None else f"<{tid}>"
    return t


def make_generator(device: str, seed: int):
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def _candidate_order(stages: list[sampling.StageResult], k: int, extra: list[int]) -> np.ndarray:
    """Ids of the k most likely tokens in the order the filters read them (stable on ties)."""
    base = {s.name: s for s in stages}["penalties"].probs   # after penalties: top-k / top-p order
    n = min(k, base.shape[0])
    top = np.argpartition(-base, n - 1)[:n] if n < base.shape[0] else np.arange(base.shape[0])
    ids = list(top)
    for e in extra:
        if e is not None and e not in ids:
            ids.append(int(e))
    ids = np.asarray(ids, dtype=np.int64)
    return ids[np.lexsort((ids, -base[ids]))]


def build_view(tokenizer, settings: SamplingSettings, input_ids, logits, *, chosen: Optional[int],
               how: str, step: int, node_id: int, eos_ids: list[int], rng_before=None, device="cpu",
               n: int = N_CANDIDATES, refiltered: bool = False,
               rules: Optional[sampling.ModelRules] = None) -> StepView:
    """Candidates, waterfall and draw of one step from its raw logits ``[1, vocab]``."""
    stages = sampling.waterfall(settings, input_ids, logits, rules)
    raw = stages[0].probs
    final = stages[-1].probs
    order = _candidate_order(stages, n, [chosen] if chosen is not None else [])
    removed_by = {}
    for i in order:
        for s in stages[1:]:
            if s.applied and s.probs[i] == 0 and raw[i] > 0:
                removed_by[int(i)] = s.name
                break
    cands = tuple(Candidate(int(i), token_text(tokenizer, int(i)), float(raw[i]), float(final[i]),
                       bool(final[i] == 0), removed_by.get(int(i), ""), chosen is not None and int(i) == chosen)
             for i in order)
    tp_in = sampling.top_p_input(stages)
    cumulative = tuple(np.cumsum(tp_in[order]).tolist())
    cut = sampling.top_p_cut(settings, stages, order)
    draw = None
    if how == "sample" and rng_before is not None and chosen is not None and not refiltered:
        draw = _reconstruct_draw(final, chosen, rng_before, device)
    p_eos = float(sum(raw[e] for e in eos_ids if 0 <= e < raw.shape[0]))
    return StepView(step=step, node_id=node_id, chosen_id=chosen, how=how, settings=settings, candidates=cands,
                    stages=tuple(stages), cumulative=cumulative, top_p_cut=cut, draw=draw,
                    entropy_bits=stages[0].entropy_bits, p_eos=p_eos, refiltered=refiltered)


def _reconstruct_draw(final: np.ndarray, chosen: int, rng_before, device: str) -> Draw:
    """Replay torch.multinomial's exponential race to find where the uniform draw fell."""
    g = torch.Generator(device=torch.device(device))
    g.set_state(rng_before)
    probs = torch.from_numpy(np.ascontiguousarray(final, dtype=np.float32)).to(device)[None]
    q = torch.empty_like(probs).exponential_(1, generator=g)
    race = probs / q
    winner = int(race.argmax())
    m = 1.0 / float(race.max())
    v = 1.0 - math.exp(-m)
    order = np.lexsort((np.arange(final.shape[0]), -final))
    pos = int(np.nonzero(order == chosen)[0][0])
    lo = float(final[order[:pos]].sum(dtype=np.float64))
    p = float(final[chosen])
    return Draw(u=lo + p * v, lo=lo, hi=lo + p, exact=winner == chosen,
                note="torch.multinomial (one draw = an exponential race; u lands in the chosen token's slice)")

