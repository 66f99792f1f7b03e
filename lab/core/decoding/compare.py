"""A decode beside the same model at another precision: both distributions at every step.

The decode (``DecodeSession``) chooses the tokens; the comparison model (a *twin*,
``lab.core.precision.twins``: the model at fp16 / bf16 in torch, or an ONNX file the
converter wrote) reads the same ids at every step of the path. Per step:

- both models' raw next-token top-k,
- KL(decode's model || twin) in nats, the convention of ``lab.core.precision.next_token``,
- whether both models' top-1 agree (the raw argmax),
- the twin's own choice under the same processors as the decode's step (for greedy steps:
  what the twin would have picked), so the *first divergence* is the first greedy step
  where the twin's pick differs from the decode's token: up to there both greedy paths are
  the same tokens, so this is exactly where a greedy decode of the twin leaves the path.

The twin re-reads the whole sequence for every step (an ONNX graph from the converter has
no KV cache; a torch twin is run the same way so that both are one direct forward on the
same ids — what the exactness test checks). Each step's result is kept per node, so
stepping on only runs the new step. Runs torch: call it on the model worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lab.core import sampling
from lab.core.decoding.views import token_text
from lab.core.jobs import Job

TOP_K = 5
#: The comparison is shown for at most this many steps of the path (the newest).
MAX_STEPS = 512


@dataclass(frozen=True)
class ComparedStep:
    step: int                               # 1-based; 0 is the pending next step
    node_id: int                            # the node chosen at this step (pending: the node we stand on)
    token_id: Optional[int]                 # the decode's token (None when pending)
    main_top: tuple[tuple[int, str, float], ...]     # (id, text, raw prob) of the decode's model
    twin_top: tuple[tuple[int, str, float], ...]     # the same for the twin
    kl: float                               # KL(main || twin), nats
    agree: bool                             # raw top-1 of both models is the same token
    twin_choice: int                        # the twin's pick under the step's processors (argmax)
    twin_prob_of_token: Optional[float]     # the twin's raw probability of the decode's token
    greedy: bool                            # the decode chose this step greedily

    def to_dict(self) -> dict:
        """One step as ``tvlab decode --compare --json`` prints it."""
        def top(rows):
            return [{"id": i, "token": t, "prob": p} for i, t, p in rows]
        return {"step": self.step, "token_id": self.token_id, "main_top": top(self.main_top),
                "compare_top": top(self.twin_top), "kl": self.kl, "agree": self.agree,
                "compare_choice": self.twin_choice, "compare_prob_of_token": self.twin_prob_of_token}


@dataclass(frozen=True)
class Comparison:
    """The path so far beside the twin (immutable; drawn by the panel)."""

    label: str                              # "torch fp16", "int8 (ONNX)"
    spec: str
    device: str
    note: str                               # how the twin runs (no KV cache, CPU half kernels, ...)
    steps: tuple[ComparedStep, ...]         # the chosen steps of the path, in order
    pending: Optional[ComparedStep]         # the next step when the decode can go on
    agreement: Optional[float]              # fraction of chosen steps whose top-1 agree
    first_divergence: Optional[int]         # first greedy step where the twin picks another token
    skipped: int = 0                        # oldest steps not compared (past MAX_STEPS)

    def step(self, node_id: int) -> Optional[ComparedStep]:
        for s in (*self.steps, self.pending):
            if s is not None and s.node_id == node_id:
                return s
        return None

    def to_dict(self) -> dict:
        return {"compare": self.label, "spec": self.spec, "device": self.device, "note": self.note,
                "agreement": self.agreement, "first_divergence": self.first_divergence,
                "steps": [s.to_dict() for s in self.steps]}


class DecodeComparer:
    """Keeps one twin and the per-step results of the decode it follows."""

    def __init__(self, twin):
        self.twin = twin
        self._logits: dict[tuple, object] = {}      # ids (+ encoder ids) -> twin logits [vocab]

    def close(self) -> None:
        self.twin.close()
        self._logits.clear()

    def _twin_logits(self, dec, node):
        """The twin's raw logits of the token after ``node`` (one direct forward of the whole sequence)."""
        ids = tuple(dec.path_ids(node))
        key = (tuple(dec.encoder_ids), ids)
        got = self._logits.get(key)
        if got is None:
            if dec.seq2seq:
                got = self.twin.logits([list(dec.encoder_ids)], [list(ids)])[0, -1]
            else:
                got = self.twin.logits([list(ids)])[0, -1]
            self._logits[key] = got
        return got

    def compared(self, dec, node, node_id: int, chosen: Optional[int], step: int, settings, how: str,
                 k: int = TOP_K) -> ComparedStep:
        """The step after ``node`` that chose ``chosen`` (None when pending), shown as ``node_id``."""
        import torch

        main = dec.logits_after(node)[0].double().cpu()        # the decode's device (a GPU) -> CPU
        twin = self._twin_logits(dec, node).double()            # twins answer on the CPU
        lp_main, lp_twin = torch.log_softmax(main, -1), torch.log_softmax(twin, -1)
        kl = float((lp_main.exp() * (lp_main - lp_twin)).sum().clamp_min(0.0))
        chain = sampling.build_chain(settings, dec.rules)
        # the step's processors hold tensors on the decode's device: filter the twin's logits there
        ids = torch.tensor([dec.path_ids(node)], device=dec.device) if sampling.needs_input_ids(chain) else None
        scores = sampling.apply_chain(chain, ids, twin.float()[None].to(dec.device)) if chain else twin[None]
        return ComparedStep(
            step=step, node_id=node_id, token_id=chosen,
            main_top=self._top(dec, lp_main, k), twin_top=self._top(dec, lp_twin, k), kl=kl,
            agree=int(lp_main.argmax()) == int(lp_twin.argmax()), twin_choice=int(scores.argmax()),
            twin_prob_of_token=float(lp_twin[chosen].exp()) if chosen is not None else None,
            greedy=how == "greedy")

    @staticmethod
    def _top(dec, logp, k):
        p = logp.exp()
        probs, ids = p.topk(min(k, p.numel()))
        return tuple((int(i), token_text(dec.tokenizer, int(i)), float(q)) for i, q in zip(ids, probs))

    def compare(self, dec, job: Optional[Job] = None, k: int = TOP_K) -> Comparison:
        """Every chosen step of the decode's path, and the pending one, beside the twin."""
        import torch

        job = Job.ensure(job)
        path = dec.path()
        skipped = max(0, len(path) - MAX_STEPS)
        steps = []
        with torch.inference_mode():
            for i, node in enumerate(path[skipped:]):
                job.check()
                job.progress(i / max(1, len(path)), f"comparing step {node.depth}")
                steps.append(self.compared(dec, node.parent, node.id, node.token_id, node.depth,
                                           node.settings, node.how, k))
            pending = None
            if not dec.stop_reason():
                pending = self.compared(dec, dec.current, dec.current.id, None, 0, dec.settings, "pending", k)
        agreement = sum(s.agree for s in steps) / len(steps) if steps else None
        first = next((s.step for s in steps if s.greedy and s.twin_choice != s.token_id), None)
        return Comparison(label=self.twin.label, spec=self.twin.spec, device=self.twin.device,
                          note=" ".join(n for n in (self.twin.note, RERUN_NOTE) if n),
                          steps=tuple(steps), pending=pending, agreement=agreement,
                          first_divergence=first, skipped=skipped)


RERUN_NOTE = ("The comparison model re-reads the whole sequence at every step (the converter's "
              "ONNX graphs carry no KV cache), so it runs slower than the decode.")
