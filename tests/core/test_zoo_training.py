"""The bundled model zoo: the training command end to end at a tiny size, its refusals of
bad input, its atomic output folder, and the committed zoo models themselves."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models"
sys.path.insert(0, str(ROOT))

from models import dates  # noqa: E402
from models import train as zoo_train  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
       "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}

WORDS = ("thou art the king of love and night my lord good sir what say you to this "
         "fair lady sweet heaven hath made the world a stage where all men play").split()


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """Four small 'plays' of seeded word salad in the exported .txt layout."""
    import random
    d = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for name in ("alpha", "beta", "gamma", "delta"):
        lines = []
        for _ in range(300):
            lines.append(rng.choice(["KING:", "QUEEN:", "FOOL:"]))
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))).capitalize() + ".")
            lines.append("")
        (d / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    (d / "SOURCE.json").write_text(json.dumps({"package": "test", "version": "0", "licence": "none",
                                               "url": "-"}), encoding="utf-8")
    return d


def _texts(corpus: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("*.txt"))]


@pytest.mark.parametrize("trainer", ["train_bpe", "train_wordpiece", "train_unigram"])
def test_tokenizer_training_is_the_same_on_every_run(trainer, tiny_corpus):
    """`tokenizers` hands out some ids in hash-map order (WordPiece's ##pieces, Unigram's
    ties); the zoo's trainers pin them, so a retrain writes the same tokenizer.json."""
    fn = getattr(zoo_train, trainer)
    texts = _texts(tiny_corpus) + ["Quoth the Raven, 'Nevermore.' — ½ café naïve"]
    runs = {fn(texts, 120).to_str() for _ in range(4)}
    assert len(runs) == 1


def test_wordpiece_keeps_specials_special_and_pieces_plain(tiny_corpus):
    tok = zoo_train.train_wordpiece(_texts(tiny_corpus), 120)
    enc = tok.encode("Thou art the [MASK] of love.")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]" and "[MASK]" in enc.tokens
    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    assert added == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    # a literal "##h" in the text is text, not the continuation piece
    assert "##h" not in tok.encode("##h", add_special_tokens=False).tokens


def test_position_table_starts_sinusoidal():
    import torch
    from transformers import BertConfig, BertModel
    m = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, max_position_embeddings=16))
    zoo_train.init_positions(m.embeddings, 1.0)
    w = m.embeddings.position_embeddings.weight.detach()
    t = zoo_train.sinusoid_table(16, 32)
    assert torch.allclose(w / w.norm(), t / t.norm(), atol=1e-6)
    assert w.std().item() == pytest.approx(m.embeddings.word_embeddings.weight.std().item(), rel=1e-4)
    before = w.clone()
    zoo_train.init_positions(m.embeddings, 0.0)   # 0: leave the random table alone
    assert torch.equal(m.embeddings.position_embeddings.weight.detach(), before)


def _train(kind, out, corpus, *extra):
    argv = [kind, "--out", str(out), "--small", "--device", "cpu", "--steps", "4"]
    if kind != "t5":
        argv += ["--corpus", str(corpus)]
    return zoo_train.main(argv + list(extra))


@pytest.fixture(scope="module")
def small_gpt(tmp_path_factory, tiny_corpus) -> Path:
    out = tmp_path_factory.mktemp("zoo") / "gpt"
    assert _train("gpt", out, tiny_corpus) == 0
    return out


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _card_ok(folder: Path):
    card = (folder / "README.md").read_text(encoding="utf-8")
    for needle in ("Data and licence", "Parameters:", "Training tokens:", "6ND", "PF-days",
                   "Hardware:", "Wall time:", "## Validation", "## Samples", "## Reproduce",
                   "python -m models.train"):
        assert needle in card, needle
    assert card.count("   output:") == 3


# ----------------------------------------------------------------- end to end, tiny
def test_small_gpt_trains_and_loads(small_gpt):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "generation_config.json", "README.md", "loss_curve.csv", "training.json"):
        assert (small_gpt / f).is_file(), f
    model = AutoModelForCausalLM.from_pretrained(small_gpt, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(small_gpt)
    enc = tok("thou art the king", return_offsets_mapping=True)
    assert len(enc["offset_mapping"]) == len(enc["input_ids"])
    assert tok.eos_token == "<|endoftext|>" and tok.bos_token is not None
    out = model(**tok("thou art", return_tensors="pt"), output_attentions=True)
    assert len(out.attentions) == model.config.n_layer
    rows = (small_gpt / "loss_curve.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,tokens") and len(rows) == 1 + 4
    _card_ok(small_gpt)
    assert not [p for p in small_gpt.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["bert", "t5"])
def test_small_bert_and_t5_train_and_load(kind, tmp_path, tiny_corpus):
    from transformers import AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoTokenizer
    out = tmp_path / kind
    extra = ["--steps", "2"] if kind == "t5" else []
    assert _train(kind, out, tiny_corpus, *extra) == 0
    auto = AutoModelForMaskedLM if kind == "bert" else AutoModelForSeq2SeqLM
    auto.from_pretrained(out, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(out)
    assert "offset_mapping" in tok("the king", return_offsets_mapping=True)
    if kind == "bert":
        assert tok.mask_token == "[MASK]"
    assert (out / "generation_config.json").is_file()
    _card_ok(out)


# ----------------------------------------------------------------- bad input
def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "models.train", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_error(p):
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_refuses_missing_corpus(tmp_path):
    line = _one_line_error(_cli("gpt", "--out", str(tmp_path / "m"), "--small",
                                "--corpus", str(tmp_path / "no-such-folder")))
    assert "corpus" in line
    assert not (tmp_path / "m").exists()


def test_refuses_unwritable_out(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = _one_line_error(_cli("gpt", "--out", str(blocker / "m"), "--small"))
    assert "not writable" in line
    line = _one_line_error(_cli("gpt", "--out", str(blocker), "--small"))
    assert "not writable" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_refuses_read_only_parent(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(_cli("gpt", "--out", str(ro / "m"), "--small"))
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("args", [["gpt", "--block-size", "1024", "--n-positions", "512"],
                                  ["bert", "--block-size", "600", "--n-positions", "512"],
                                  ["t5", "--block-size", "8"]])
def test_refuses_context_that_cannot_fit(tmp_path, args):
    line = _one_line_error(_cli(*args, "--out", str(tmp_path / "m")))
    assert "context cannot fit" in line


# ----------------------------------------------------------------- atomic output
def test_crash_mid_run_leaves_good_folder(small_gpt, tiny_corpus):
    before = _digest(small_gpt)
    with pytest.raises(RuntimeError):
        _train("gpt", small_gpt, tiny_corpus, "--fail-at-step", "2")
    assert _digest(small_gpt) == before
    assert not [p for p in small_gpt.parent.iterdir() if p.name.startswith(".")]


def test_interrupt_leaves_good_folder(small_gpt, tiny_corpus):
    before = _digest(small_gpt)
    p = subprocess.Popen([sys.executable, "-m", "models.train", "gpt", "--out", str(small_gpt),
                          "--small", "--device", "cpu", "--steps", "100000", "--corpus",
                          str(tiny_corpus)], cwd=ROOT, env={**ENV, "PYTHONUNBUFFERED": "1"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    for line in p.stdout:  # wait until training is under way
        if " step " in line or time.time() > deadline:
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert "interrupted" in err
    assert _digest(small_gpt) == before
    assert not [q for q in small_gpt.parent.iterdir() if q.name.startswith(".")]


# ----------------------------------------------------------------- the committed zoo
ZOO_KINDS = {"bard-gpt": "causal", "bard-bert": "masked", "dates-t5": "seq2seq"}


def _auto(kind):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM
    return {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM,
            "seq2seq": AutoModelForSeq2SeqLM}[kind]


@pytest.mark.parametrize("name", list(ZOO_KINDS))
def test_zoo_model_loads_fast_and_has_a_card(name):
    folder = ZOO / name
    if not (folder / "model.safetensors").exists():
        pytest.skip(f"{name} not trained in this checkout")
    from transformers import AutoTokenizer
    auto = _auto(ZOO_KINDS[name])
    auto.from_pretrained(folder, attn_implementation="eager")   # warm the imports
    t = time.perf_counter()
    model = auto.from_pretrained(folder, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(folder)
    assert time.perf_counter() - t < 1.0
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())
    enc = tok("Now is the winter of our discontent", return_offsets_mapping=True)
    assert len(enc["offset_mapping"]) == len(enc["input_ids"])
    assert (folder / "generation_config.json").is_file() and (folder / "loss_curve.csv").is_file()
    _card_ok(folder)
    rec = json.loads((folder / "training.json").read_text())
    if name == "bard-gpt":
        assert tok.eos_token == "<|endoftext|>" and tok.bos_token
        assert model.config.n_positions >= 256 and model.config.n_layer >= 4 and model.config.n_head >= 4
        assert rec["metrics"]["val_nats_per_char"] <= 1.6
    elif name == "bard-bert":
        assert tok.mask_token == "[MASK]"
    else:
        assert rec["metrics"]["val_exact_match"] >= 0.98


def test_bard_bert_meets_accuracy_aim():
    folder = ZOO / "bard-bert"
    if not (folder / "training.json").exists():
        pytest.skip("bard-bert not trained in this checkout")
    rec = json.loads((folder / "training.json").read_text())
    assert rec["metrics"]["val_mlm_top1_accuracy"] >= 0.35


def test_bard_bert_has_the_positional_heads_lesson_4_names():
    """Lesson 4 sends people to bard-bert's layer 0: head 1 reads the previous token,
    heads 2 and 3 the next one. A retrain that loses them must update the lesson."""
    import numpy as np
    from lab.core import models, trace
    if not (ZOO / "bard-bert" / "model.safetensors").exists():
        pytest.skip("bard-bert not trained in this checkout")
    lesson = json.loads((ROOT / "resources" / "lessons" / "04-architectures.json").read_text(encoding="utf-8"))
    assert any("layer 0, head 1 looks at the previous token" in t for t in lesson["try"])
    tr = trace.capture(models.load("zoo:bard-bert"), "the 3rd of March, 1987")
    a = np.asarray(tr.attentions["self"])[0]
    T = a.shape[-1]
    prev = [a[h, np.arange(2, T - 1), np.arange(1, T - 2)].mean() for h in range(a.shape[0])]
    nxt = [a[h, np.arange(1, T - 2), np.arange(2, T - 1)].mean() for h in range(a.shape[0])]
    assert prev[1] > 0.8 and nxt[2] > 0.8 and nxt[3] > 0.8, (prev, nxt)


def test_zoo_total_size():
    files = [ZOO / n / "model.safetensors" for n in ZOO_KINDS]
    if not all(f.exists() for f in files):
        pytest.skip("zoo not trained in this checkout")
    assert sum(f.stat().st_size for f in files) <= 60e6


def test_dates_t5_answers_held_out_dates():
    folder = ZOO / "dates-t5"
    if not (folder / "model.safetensors").exists():
        pytest.skip("dates-t5 not trained in this checkout")
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(folder)
    _, val_days = dates.split_days(0)
    import random
    rng = random.Random(7)
    pairs = [(fn(d), d.isoformat()) for d in rng.sample(val_days, 12)
             for _n, short, fn in [dates.FORMATS[rng.randrange(len(dates.FORMATS))]]
             if not short or 1950 <= d.year <= 2049]
    pairs += [("the 3rd of March, 1987", "1987-03-03"), ("Mar 3 87", "1987-03-03"),
              ("3/3/1987", "1987-03-03")]
    b = tok([s for s, _ in pairs], return_tensors="pt", padding=True)
    out = tok.batch_decode(model.generate(**b), skip_special_tokens=True)
    right = sum(o.strip() == t for o, (_, t) in zip(out, pairs))
    assert right >= len(pairs) - 1, list(zip(out, pairs))


def test_scaling_runs_csv():
    path = ZOO / "scaling_runs.csv"
    if not path.exists():
        pytest.skip("no sweep in this checkout")
    import csv
    text = path.read_text().splitlines()
    comments = [line for line in text if line.startswith("#")]
    assert any("command" in c for c in comments) and any("hardware" in c for c in comments)
    assert any("wall time" in c for c in comments)
    rows = list(csv.DictReader(line for line in text if not line.startswith("#")))
    for col in ("params", "non_embedding_params", "tokens", "flops", "val_loss", "val_nats_per_char"):
        assert col in rows[0]
    sizes = sorted({int(r["non_embedding_params"]) for r in rows})
    assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 30
    for s in sizes:
        assert len({r["tokens"] for r in rows if int(r["non_embedding_params"]) == s}) >= 4
