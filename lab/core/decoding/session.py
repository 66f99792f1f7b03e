"""The step-through decode of a decoder-only or encoder-decoder model.

``DecodeSession`` keeps a *tree* of tokens. Each node is one generated token; the root
is the prompt. The session holds one live KV cache and the list of ids it contains;
every node remembers the raw logits of the token after it (``next_logits``) once they
have been computed, so

- Step runs one incremental forward pass (one new token, the cache holds the rest),
- Back and switching branches are instant (no model run); the next forward first crops
  the cache to the prefix the new path shares with it (``Cache.crop``) and feeds the
  missing tokens in one pass, so the cache never desynchronises from the path,
- changing the settings re-filters the cached logits of the step on screen without a
  model run,
- a long session keeps at most ``LOGITS_BUDGET_BYTES`` of logits (least recently used
  go first, after the timeline's figures of their children are computed); a dropped
  step shown again is read with one forward pass.

Greedy is ``argmax`` of the processed scores; sampling is one ``torch.multinomial`` draw
from their softmax with a ``torch.Generator`` seeded with the seed. A node stores the
generator state before and after its draw, so a branch replays the same tokens (and
``views`` can show where the draw fell).
"""
from __future__ import annotations

import inspect
import itertools
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from lab.core import sampling
from lab.core.decoding.fill_mask import MASK_SPELLINGS
from lab.core.decoding.snapshots import Branch, DecodeSnapshot, StepView, TimelineItem
from lab.core.decoding.views import N_CANDIDATES, build_view, make_generator, token_text
from lab.core.errors import InputError
from lab.core.jobs import Job
from lab.core.models import KIND_ENCODER, KIND_SEQ2SEQ, LoadedModel, device_errors
from lab.core.sampling import SamplingSettings

#: Raw next-token logits a decode keeps for Back, branches and re-filtering, in bytes
#: (GPT-2's vocabulary: about 1,300 steps). Past it the least recently used are dropped;
#: a dropped step's numbers are read again with one forward pass if it is shown again.
LOGITS_BUDGET_BYTES = 256 * 2**20


@dataclass(eq=False)
class Node:
    id: int
    parent: Optional["Node"]
    token_id: Optional[int]            # None for the root (the prompt)
    depth: int                         # generated tokens up to and including this one
    settings: SamplingSettings         # what chose this token (root: the settings at reset)
    how: str                           # prompt | greedy | sample | forced
    rng_before: Any = None             # generator state before this node's draw (sampling)
    rng_after: Any = None              # generator state for the next draw from here
    next_logits: Any = None            # [1, vocab] float32 raw logits of the token after this one
    children: list["Node"] = field(default_factory=list)
    ms: float = 0.0                    # time of the forward pass that produced next_logits
    _stats: Optional[dict] = None      # raw prob / entropy / P(EOS) of the step, computed on demand
    _cum: Optional[float] = None

    @property
    def is_root(self) -> bool:
        return self.parent is None


def _model_kwarg(model, *names) -> Optional[str]:
    params = inspect.signature(model.forward).parameters
    return next((n for n in names if n in params), None)


# --- the decode session -------------------------------------------------------------------------

class DecodeSession:
    """A step-through decode of a decoder-only or encoder-decoder model (see module doc)."""

    def __init__(self, lm: LoadedModel, prompt: str = "", settings: Optional[SamplingSettings] = None, *,
                 prompt_ids: Optional[list[int]] = None, eos_token_ids: Optional[list[int]] = None,
                 job: Optional[Job] = None):
        job = Job.ensure(job)
        if lm.kind == KIND_ENCODER:
            raise InputError(f"{lm.card.name} is an encoder-only model: it fills in masks instead of "
                             "continuing text (use fill-in-the-mask).")
        self.lm = lm
        self.model = lm.model
        self.tokenizer = lm.tokenizer
        self.device = str(lm.device)
        self.seq2seq = lm.kind == KIND_SEQ2SEQ
        defaults = sampling.model_defaults(self.model)
        self.settings = (settings or defaults.settings).validated()
        self.eos_ids = list(eos_token_ids if eos_token_ids is not None else (
            defaults.eos_token_ids or sampling.eos_token_ids(self.model, self.tokenizer)))
        self.notes: list[str] = []
        self.prompt = prompt or ""
        self._cache_kw = _model_kwarg(self.model, "cache", "past_key_values") or "past_key_values"
        self._pos_kw = None if self.seq2seq else _model_kwarg(self.model, "position_ids")
        self._keep_kw = None if self.seq2seq else _model_kwarg(self.model, "logits_to_keep")
        self._ids = itertools.count()
        self._chain_for: Optional[SamplingSettings] = None
        self._chain: list = []
        self._gen = None
        self._cache = None
        self._cache_ids: list[int] = []
        self._encoder_outputs = None
        self._enc_mask = None
        self.forward_lengths: list[int] = []   # tokens fed per forward pass (for the tests and the UI)
        self.logits_budget = LOGITS_BUDGET_BYTES
        self._held: "OrderedDict[int, Node]" = OrderedDict()   # nodes holding next_logits, oldest first
        self._held_bytes = 0
        self.dropped_logits = 0                 # how many steps' logits were let go (budget)

        ids = list(prompt_ids) if prompt_ids is not None else self._encode(self.prompt)
        if self._mask_in(self.prompt):
            self.notes.append(f"{lm.card.name} is {lm.kind}: it reads left to right and does not fill in masks; "
                              "the mask token is treated as ordinary text.")
        if self.seq2seq:
            if not ids:
                raise InputError("The prompt gives no tokens: type some text for the encoder.")
            self.encoder_ids = ids
            start = self.model.config.decoder_start_token_id
            if start is None:
                start = getattr(self.model.generation_config, "decoder_start_token_id", None)
            if start is None:
                start = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            self.prefix_ids = [int(start)]
        else:
            if not ids:
                bos = getattr(self.tokenizer, "bos_token_id", None) if self.tokenizer is not None else None
                if bos is None:
                    bos = getattr(self.model.config, "bos_token_id", None)
                if bos is None:
                    raise InputError(f"The prompt is empty and {lm.card.name} has no beginning-of-sequence token "
                                     "to start from: type a prompt.")
                ids = [int(bos)]
                self.notes.append("The prompt is empty, so decoding starts from the beginning-of-sequence token.")
            self.encoder_ids = []
            self.prefix_ids = ids
        self.max_new_tokens = self._clamp(self.settings.max_new_tokens)
        # the model's own generation-config rules (n-gram blocking, minimum lengths, ...), as
        # generate() builds them for this prompt: its input length is the decoder's prefix
        self.rules = sampling.ModelRules(getattr(self.model, "generation_config", None), eos_ids=self.eos_ids,
                                         prompt_len=len(self.prefix_ids),
                                         encoder_ids=self.encoder_ids if self.seq2seq else self.prefix_ids,
                                         device=self.device)
        self.root = Node(next(self._ids), None, None, 0, self.settings, "prompt",
                         rng_after=self._fresh_rng(self.settings.seed))
        self.nodes: dict[int, Node] = {self.root.id: self.root}
        self.current = self.root
        job.progress(0.1, "reading the prompt")
        with torch.inference_mode(), device_errors(self.device):
            if self.seq2seq:
                enc = torch.tensor([self.encoder_ids], device=self.device)
                self._enc_mask = torch.ones_like(enc)
                self._encoder_outputs = self.model.get_encoder()(input_ids=enc, attention_mask=self._enc_mask,
                                                                 return_dict=True)
            self._ensure_logits(self.root)
        job.progress(1.0, "ready")

    # --- setup helpers
    def _encode(self, text: str) -> list[int]:
        if not text:
            return []
        limit = self.lm.card.context
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        if limit and len(ids) > limit and self.seq2seq:
            self.notes.append(f"The prompt is {len(ids)} tokens; the encoder reads the first {limit}.")
            ids = ids[:limit]
        return ids

    def _mask_in(self, text: str) -> bool:
        mask = getattr(self.tokenizer, "mask_token", None)
        spellings = {m for m in (mask, *MASK_SPELLINGS) if m}
        return any(m in text for m in spellings)

    def _clamp(self, wanted: int) -> int:
        limit = self.lm.card.context
        if not limit:
            return wanted
        room = limit - len(self.prefix_ids)
        if room <= 0:
            raise InputError(f"The prompt is {len(self.prefix_ids)} tokens and fills the context window of "
                             f"{self.lm.card.name} ({limit} tokens): shorten it to leave room for new tokens.")
        if wanted > room:
            self.notes.append(f"Max new tokens {wanted} would pass the context window of {limit} tokens; "
                              f"clamped to {room}.")
            return room
        return wanted

    def _fresh_rng(self, seed: int):
        return make_generator(self.device, seed).get_state()

    def _chain_now(self) -> list:
        if self._chain_for != self.settings:
            self._chain = sampling.build_chain(self.settings, self.rules)
            self._chain_for = self.settings
        return self._chain

    # --- settings
    def set_settings(self, settings: SamplingSettings) -> None:
        """New settings for the next steps; a new seed restarts the generator from here."""
        settings = settings.validated()
        old = self.settings
        self.settings = settings
        if settings.max_new_tokens != old.max_new_tokens or not hasattr(self, "max_new_tokens"):
            self.max_new_tokens = self._clamp(settings.max_new_tokens)
        if settings.seed != old.seed:
            self.current.rng_after = self._fresh_rng(settings.seed)

    # --- paths
    def path(self, node: Optional[Node] = None) -> list[Node]:
        node = node or self.current
        out = []
        while node is not None and not node.is_root:
            out.append(node)
            node = node.parent
        return out[::-1]

    def generated_ids(self, node: Optional[Node] = None) -> list[int]:
        return [n.token_id for n in self.path(node)]

    def path_ids(self, node: Optional[Node] = None) -> list[int]:
        """Decoder-side ids up to ``node``: the prompt (or the start token) and the generated tokens."""
        return self.prefix_ids + self.generated_ids(node)

    def text(self, node: Optional[Node] = None, skip_special_tokens: bool = True) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(self.generated_ids(node), skip_special_tokens=skip_special_tokens)

    def stop_reason(self, node: Optional[Node] = None) -> str:
        """'eos', 'max' or '' (the decode can go on from ``node``)."""
        node = node or self.current
        if node.token_id is not None and self.settings.stop_at_eos and node.token_id in self.eos_ids:
            return "eos"
        if node.depth >= self.max_new_tokens:
            return "max"
        return ""

    # --- the model
    def _forward(self, feed: list[int], start: int):
        """One forward pass feeding ``feed`` at positions ``start...``; returns logits [1, vocab] float32."""
        x = torch.tensor([feed], device=self.device)
        kw: dict[str, Any] = {self._cache_kw: self._cache, "use_cache": True, "return_dict": True}
        if self.seq2seq:
            kw.update(decoder_input_ids=x, encoder_outputs=self._encoder_outputs, attention_mask=self._enc_mask)
        else:
            kw["input_ids"] = x
            if self._pos_kw:
                kw[self._pos_kw] = torch.arange(start, start + len(feed), device=self.device)[None]
            if self._keep_kw:
                kw[self._keep_kw] = 1
        self.forward_lengths.append(len(feed))
        out = self.model(**kw)
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        self._cache = cache
        return out.logits[:, -1].to(dtype=torch.float32, copy=True)

    def _sync_cache(self, ids: list[int]) -> int:
        """Crop the cache to the prefix it shares with ``ids`` (keeping at least one token to feed)."""
        common = 0
        for a, b in zip(self._cache_ids, ids):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)
        have = len(self._cache_ids)
        if self._cache is not None and common < have:
            try:
                self._cache.crop(-(have - common)) if common > 0 else None
                if common == 0 or self._cache.get_seq_length() != common:
                    raise ValueError("crop did not reach the prefix")
            except Exception:   # a cache that cannot be cropped (or nothing shared): start over
                self._cache, common = None, 0
            self._cache_ids = self._cache_ids[:common]
        if self._cache is None:
            common = 0
            self._cache_ids = []
        return common

    def _ensure_logits(self, node: Node):
        if node.next_logits is not None:
            if node.id in self._held:
                self._held.move_to_end(node.id)
            return node.next_logits
        ids = self.path_ids(node)
        common = self._sync_cache(ids)
        t = time.perf_counter()
        logits = self._forward(ids[common:], common)
        node.next_logits = logits
        self._cache_ids = ids
        node.ms = (time.perf_counter() - t) * 1000
        self._hold(node)
        return logits

    def logits_after(self, node: Node):
        """The model's raw logits [1, vocab] (float32) of the token after ``node``."""
        with torch.inference_mode(), device_errors(self.device):
            return self._ensure_logits(node)

    def _hold(self, node: Node) -> None:
        """Keep ``node``'s logits; past the budget let the least recently used go, after
        computing what the timeline and tree show of their children (which need them)."""
        self._held[node.id] = node
        self._held_bytes += node.next_logits.numel() * node.next_logits.element_size()
        keep = {node.id, self.current.id}
        for nid in list(self._held):
            if self._held_bytes <= self.logits_budget or len(self._held) <= len(keep):
                break
            if nid in keep:
                continue
            old = self._held.pop(nid)
            for child in old.children:
                self._stats(child)
            self._held_bytes -= old.next_logits.numel() * old.next_logits.element_size()
            old.next_logits = None
            self.dropped_logits += 1

    def _input_ids(self, node: Node):
        return torch.tensor([self.path_ids(node)], device=self.device)

    # --- stepping
    def step(self, force: Optional[int] = None, job: Optional[Job] = None) -> Optional[Node]:
        """Choose the next token (or ``force`` it); None when the decode has stopped."""
        node = self.current
        if force is None and self.stop_reason(node):
            return None
        if force is not None and node.depth >= self.max_new_tokens:
            raise InputError(f"The decode already has {node.depth} tokens, the maximum; raise max new tokens.")
        s = self.settings
        with torch.inference_mode(), device_errors(self.device):
            logits = self._ensure_logits(node)
            rng_before = rng_after = node.rng_after
            if force is not None:
                tok, how = int(force), "forced"
                if not 0 <= tok < logits.shape[-1]:
                    raise InputError(f"Token id {tok} is outside the vocabulary (0-{logits.shape[-1] - 1}).")
            else:
                chain = self._chain_now()
                ids = self._input_ids(node) if sampling.needs_input_ids(chain) else None
                scores = sampling.apply_chain(chain, ids, logits) if chain else logits
                if s.do_sample:
                    if self._gen is None:
                        self._gen = torch.Generator(device=torch.device(self.device))
                    self._gen.set_state(rng_before)
                    probs = torch.softmax(scores, dim=-1)
                    tok = int(torch.multinomial(probs, num_samples=1, generator=self._gen))
                    rng_after = self._gen.get_state()
                    how = "sample"
                else:
                    tok, how = int(torch.argmax(scores, dim=-1)), "greedy"
        child = next((c for c in node.children if c.token_id == tok), None)
        if child is None:
            child = Node(next(self._ids), node, tok, node.depth + 1, s, how, rng_before=rng_before,
                         rng_after=rng_after)
            node.children.append(child)
            self.nodes[child.id] = child
        else:   # the same prefix again: reuse its cached logits, record the latest choice
            child.settings, child.how, child.rng_before, child.rng_after = s, how, rng_before, rng_after
        self.current = child
        return child

    def run(self, job: Optional[Job] = None) -> list[Node]:
        """Step until EOS or max new tokens; cancellable between steps through ``job``."""
        job = Job.ensure(job)
        out = []
        total = max(1, self.max_new_tokens - self.current.depth)
        while True:
            job.check()
            node = self.step()
            if node is None:
                break
            out.append(node)
            job.progress(min(1.0, len(out) / total), f"token {node.depth}")
        return out

    def back(self) -> Node:
        """Undo one step (instant; the cache is cropped lazily before the next forward)."""
        if not self.current.is_root:
            self.current = self.current.parent
        return self.current

    def branch(self, node_id: int, token_id: int) -> Node:
        """Replace the token of step ``node_id`` by ``token_id``: a new branch of the tree."""
        node = self.nodes[node_id]
        if node.is_root:
            raise InputError("The prompt has no candidates to choose from; pick a generated step.")
        self.current = node.parent
        return self.step(force=token_id)

    def goto(self, node_id: int) -> Node:
        if node_id not in self.nodes:
            raise InputError(f"No step {node_id} in this decode.")
        self.current = self.nodes[node_id]
        return self.current

    # --- what the panel shows
    def view(self, node: Optional[Node] = None, settings: Optional[SamplingSettings] = None,
             n: int = N_CANDIDATES) -> StepView:
        """The step that chose ``node`` (or, for the root, the pending first step)."""
        node = node or self.current
        with torch.inference_mode():
            if node.is_root:
                logits = self._ensure_logits(node)
                s = settings or self.settings
                return build_view(self.tokenizer, s, self._input_ids(node), logits, chosen=None, how="pending",
                                  step=0, node_id=node.id, eos_ids=self.eos_ids, device=self.device, n=n,
                                  rules=self.rules)
            parent = node.parent
            s = settings or node.settings
            refiltered = s != node.settings
            logits = self._ensure_logits(parent)
            return build_view(self.tokenizer, s, self._input_ids(parent), logits, chosen=node.token_id,
                              how=node.how, step=node.depth, node_id=node.id, eos_ids=self.eos_ids,
                              rng_before=node.rng_before, device=self.device, n=n, refiltered=refiltered,
                              rules=self.rules)

    def _stats(self, node: Node) -> dict:
        if node._stats is None:
            with torch.inference_mode():
                logits = self._ensure_logits(node.parent)
                logp = torch.log_softmax(logits[0].float(), dim=-1)
                p = logp.exp()
                ent = float(-(p * torch.nan_to_num(logp, neginf=0.0)).sum()) / math.log(2)
                chain = sampling.build_chain(node.settings, self.rules)
                ids = self._input_ids(node.parent) if sampling.needs_input_ids(chain) else None
                proc = torch.softmax(sampling.apply_chain(chain, ids, logits), dim=-1)[0]
                eos = [e for e in self.eos_ids if 0 <= e < p.shape[0]]
                node._stats = {"raw_logprob": float(logp[node.token_id]), "raw_prob": float(p[node.token_id]),
                               "prob": float(proc[node.token_id]), "entropy_bits": ent,
                               "p_eos": float(p[eos].sum()) if eos else 0.0}
        return node._stats

    def cum_logprob(self, node: Optional[Node] = None) -> float:
        """Sum of the model's (raw) log-probabilities of the tokens of the path, in nats."""
        node = node or self.current
        if node.is_root:
            return 0.0
        if node._cum is None:
            node._cum = self.cum_logprob(node.parent) + self._stats(node)["raw_logprob"]
        return node._cum

    def timeline(self, node: Optional[Node] = None) -> list[TimelineItem]:
        out = []
        for n in self.path(node):
            st = self._stats(n)
            out.append(TimelineItem(n.id, n.token_id, token_text(self.tokenizer, n.token_id), st["raw_prob"],
                                    st["prob"], st["entropy_bits"], st["p_eos"], n.how))
        return out

    def tree(self) -> Branch:
        """The decode tree with single-child chains merged into runs (for the tree view)."""
        on_path = {n.id for n in self.path()} | {self.root.id}

        def run_from(first: Node, parent_id: Optional[int]) -> Branch:
            chain = [first]
            while len(chain[-1].children) == 1:
                chain.append(chain[-1].children[0])
            last = chain[-1]
            ids = [c.token_id for c in chain if c.token_id is not None]
            text = self.tokenizer.decode(ids, skip_special_tokens=False) if (ids and self.tokenizer) else ""
            return Branch(node_id=last.id, parent_node_id=parent_id, first_depth=first.depth, text=text,
                          tokens=len(ids), cum_logprob=self.cum_logprob(last), settings=last.settings.describe(),
                          on_path=any(c.id in on_path for c in chain),
                          children=tuple(run_from(c, last.id) for c in last.children))

        return run_from(self.root, None)

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.children and not n.is_root]


def snapshot_decode(dec: DecodeSession, focus: Optional[int] = None,
                    settings: Optional[SamplingSettings] = None) -> DecodeSnapshot:
    """Everything the decoding panel draws; ``focus`` is a node on the path (default: the current)."""
    on_path = {n.id for n in dec.path()} | {dec.root.id}
    node = dec.nodes.get(focus) if focus is not None else None
    if node is None or node.id not in on_path:
        node = dec.current
    prompt_ids = dec.encoder_ids if dec.seq2seq else dec.prefix_ids
    return DecodeSnapshot(
        model=dec.lm.card.name, prompt=dec.prompt, seq2seq=dec.seq2seq,
        prompt_tokens=tuple(token_text(dec.tokenizer, t) for t in prompt_ids),
        timeline=tuple(dec.timeline()), current_id=dec.current.id, focus_id=node.id, focus_step=node.depth,
        view=dec.view(node, settings=settings or dec.settings), tree=dec.tree(), stop=dec.stop_reason(),
        notes=tuple(dec.notes), settings=dec.settings, max_new_tokens=dec.max_new_tokens, text=dec.text(),
        cum_logprob=dec.cum_logprob(), ms=dec.current.parent.ms if dec.current.parent else dec.root.ms,
        eos_ids=tuple(dec.eos_ids), forwards=len(dec.forward_lengths))
