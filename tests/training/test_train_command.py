"""The zoo's training command end to end at a tiny size: tokenizer training, its refusals
of bad input and its atomic output folder."""
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

from models.training import train as zoo_train

ROOT = Path(__file__).resolve().parents[2]

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

    from lab.bench import tiny_models
    m = tiny_models.model("bert", tiny_models.wordpiece_tokenizer(), num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=16).bert
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


# ----------------------------------------------------------------- end to end, tiny
def test_small_gpt_trains_and_loads(small_gpt, card_ok):
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
    card_ok(small_gpt)
    assert not [p for p in small_gpt.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["bert", "t5"])
def test_small_bert_and_t5_train_and_load(kind, tmp_path, tiny_corpus, card_ok):
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
    card_ok(out)


# ----------------------------------------------------------------- bad input
def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "models.training.train", *args], cwd=ROOT, env=ENV,
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
    p = subprocess.Popen([sys.executable, "-m", "models.training.train", "gpt", "--out", str(small_gpt),
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
