"""Pre-training objectives: the examples against their recipes (statistics over many seeds)
and the per-token losses against transformers' own losses."""
import json

import numpy as np
import pytest
import torch

from lab.core import models, objectives
from lab.core.errors import InputError
from lab.core.objectives import IGNORE, examples

TEXT = "To be, or not to be, that is the question. Shall I compare thee to a summer's day?"
LONG = " ".join(["The teacher taught the students with the book, and I sat on the river bank."] * 12)


def _tokens(lm, text):
    enc = lm.tokenizer(text, add_special_tokens=True)
    ids = list(enc["input_ids"])
    return ids, [i in set(lm.tokenizer.all_special_ids) for i in ids]


# --- the model's own loss against transformers ---------------------------------------------

@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_causal_loss_equals_transformers_loss(kind, loaded):
    lm = loaded(kind)
    ids, _ = _tokens(lm, TEXT)
    strip = objectives.causal(lm, ids)
    x = torch.tensor([ids])
    with torch.no_grad():
        ref = lm.model(input_ids=x, labels=x).loss.item()
    assert strip.tokens[0].nats is None and len(strip.scored) == len(ids) - 1
    assert strip.mean_nats == pytest.approx(ref, abs=1e-5)
    assert strip.perplexity == pytest.approx(np.exp(ref), rel=1e-5)
    # each token's value is -log p(token | the tokens before it), from the logits one step back
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=x).logits[0], -1)
    for i in (1, len(ids) // 2, len(ids) - 1):
        assert strip.tokens[i].nats == pytest.approx(-logp[i - 1, ids[i]].item(), abs=1e-5)
        assert strip.tokens[i].bits == pytest.approx(strip.tokens[i].nats / np.log(2))
        assert strip.tokens[i].rank == int((logp[i - 1] > logp[i - 1, ids[i]]).sum()) + 1
        assert strip.tokens[i].top[0][1] == pytest.approx(logp[i - 1].exp().max().item(), abs=1e-6)


def test_seq2seq_loss_equals_transformers_loss(loaded):
    lm = loaded("t5")
    src, _ = _tokens(lm, "I sat on the river bank.")
    tgt = list(lm.tokenizer(text_target="the water", add_special_tokens=True)["input_ids"])
    strip = objectives.seq2seq(lm, src, tgt)
    with torch.no_grad():
        ref = lm.model(input_ids=torch.tensor([src]), labels=torch.tensor([tgt])).loss.item()
    assert len(strip.scored) == len(tgt)
    assert strip.mean_nats == pytest.approx(ref, abs=1e-5)
    rep = objectives.analyse(lm, "I sat on the river bank.", "the water")
    assert rep.target == "the water" and rep.target_source == "given"
    assert rep.loss.mean_nats == pytest.approx(ref, abs=1e-5)


def test_pseudo_log_likelihood_equals_the_one_by_one_loop(loaded):
    lm = loaded("bert")
    ids, special = _tokens(lm, TEXT)
    strip = objectives.pseudo_log_likelihood(lm, ids, special, batch=4)
    manual = {}
    with torch.no_grad():
        for i, s in enumerate(special):
            if s:
                continue
            x = torch.tensor([ids])
            x[0, i] = lm.tokenizer.mask_token_id
            manual[i] = -torch.log_softmax(lm.model(input_ids=x).logits[0, i], -1)[ids[i]].item()
    assert [t.index for t in strip.scored] == sorted(manual)
    for t in strip.tokens:
        if special[t.index]:
            assert t.nats is None
        else:
            assert t.nats == pytest.approx(manual[t.index], abs=1e-5)
    assert strip.mean_nats == pytest.approx(np.mean(list(manual.values())), abs=1e-5)
    assert objectives.pseudo_log_likelihood(lm, ids, special, batch=64).mean_nats == pytest.approx(
        strip.mean_nats, abs=1e-5)


def test_pll_needs_a_mask_token(loaded):
    lm = loaded("gpt2")
    ids, special = _tokens(lm, TEXT)
    with pytest.raises(InputError, match="no mask token"):
        objectives.pseudo_log_likelihood(lm, ids, special)


def test_analyse_follows_the_model_kind(loaded):
    kinds = {"gpt2": ("causal", "causal"), "bert": ("pll", "masked"), "t5": ("seq2seq", "span")}
    for kind, (loss, own) in kinds.items():
        rep = objectives.analyse(loaded(kind), TEXT)
        assert rep.loss.objective == loss and rep.own_objective == own
        assert [e.objective for e in rep.examples] == ["causal", "masked", "span"]
        json.dumps(rep.to_json())
        assert rep.csv_text().count("\n") == len(rep.loss.tokens) + 1


def test_seq2seq_without_a_target_scores_the_greedy_output(loaded):
    lm = loaded("t5")
    rep = objectives.analyse(lm, "I sat on the river bank.")
    assert rep.target_source == "greedy"
    assert any("greedy" in n for n in rep.notes)
    for t in rep.loss.tokens:
        assert t.rank == 1         # greedy output: every token is the model's top prediction


def test_bad_input(loaded):
    with pytest.raises(InputError, match="empty"):
        objectives.analyse(loaded("gpt2"), "")
    with pytest.raises(InputError, match="seed"):
        objectives.analyse(loaded("gpt2"), TEXT, seed=-1)
    rep = objectives.analyse(loaded("gpt2"), TEXT, "ignored")
    assert any("target only applies" in n for n in rep.notes)
    ids, _ = _tokens(loaded("gpt2"), "a")
    with pytest.raises(InputError, match="at least two tokens"):
        objectives.causal(loaded("gpt2"), ids[:1])


# --- the examples ------------------------------------------------------------------------------

def test_causal_example_is_shifted_by_one(loaded):
    lm = loaded("gpt2")
    ids, special = _tokens(lm, TEXT)
    ex = objectives.build(ids, special, lm.tokenizer)[0]
    assert list(ex.input_ids) == ids[:-1] and list(ex.labels) == ids[1:]
    assert [c.id for c in ex.rows[0].cells] == ids[:-1] and [c.id for c in ex.rows[1].cells] == ids[1:]


def test_masked_example_statistics_over_many_seeds(loaded):
    lm = loaded("bert")
    tok = lm.tokenizer
    ids, special = _tokens(lm, LONG)
    n_text = sum(not s for s in special)
    assert n_text > 150
    label = examples.Labeller(tok)
    counts = {"mask": 0, "random": 0, "keep": 0}
    chosen_total = 0
    seen_positions = set()
    for seed in range(400):
        ex = examples.masked_example(ids, special, tok, label, seed)
        chosen = [i for i, lab in enumerate(ex.labels) if lab != IGNORE]
        chosen_total += len(chosen)
        seen_positions.update(chosen)
        assert len(chosen) == round(0.15 * n_text)
        for i, (x, lab) in enumerate(zip(ex.input_ids, ex.labels)):
            if lab == IGNORE:
                assert x == ids[i]
                continue
            assert not special[i] and lab == ids[i]
            role = ex.rows[1].cells[i].role
            counts[role] += 1
            if role == "mask":
                assert x == tok.mask_token_id
            elif role == "keep":
                assert x == ids[i]
            else:
                assert x not in tok.all_special_ids and 0 <= x < len(tok)
        assert ex.stats["chosen"] == len(chosen)
    assert chosen_total / (400 * n_text) == pytest.approx(0.15, abs=0.005)
    assert not any(special[i] for i in seen_positions)
    assert len(seen_positions) > 0.95 * n_text          # every ordinary position can be chosen
    total = sum(counts.values())
    assert counts["mask"] / total == pytest.approx(0.8, abs=0.02)
    assert counts["random"] / total == pytest.approx(0.1, abs=0.015)
    assert counts["keep"] / total == pytest.approx(0.1, abs=0.015)
    # the same seed gives the same example; another seed another one
    a, b = (examples.masked_example(ids, special, tok, label, s) for s in (7, 7))
    assert a == b
    assert examples.masked_example(ids, special, tok, label, 8).input_ids != a.input_ids


def test_masked_example_without_a_mask_token_uses_a_named_placeholder(loaded):
    lm = loaded("gpt2")
    ids, special = _tokens(lm, LONG)
    ex = objectives.build(ids, special, lm.tokenizer, seed=1)[1]
    assert any("no mask token" in n for n in ex.notes)
    masked = [c for c in ex.rows[1].cells if c.role == "mask"]
    assert masked and all(c.text == "[MASK]" and c.id is None for c in masked)


def test_noise_mask_density_and_mean_span_length():
    lengths, spans_total, noise_total = 0, 0, 0
    for length in range(20, 220, 7):
        for seed in range(30):
            m = objectives.random_spans_noise_mask(length, np.random.default_rng(seed))
            assert m.shape == (length,) and not m[0]          # T5's mask starts with non-noise
            assert m.sum() == round(0.15 * length)
            starts = np.flatnonzero(m & ~np.concatenate([[False], m[:-1]]))
            assert len(starts) == max(round(m.sum() / 3), 1)
            lengths += length
            spans_total += len(starts)
            noise_total += int(m.sum())
    assert noise_total / lengths == pytest.approx(0.15, abs=0.005)
    assert noise_total / spans_total == pytest.approx(3.0, abs=0.15)
    with pytest.raises(InputError):
        objectives.random_spans_noise_mask(1, np.random.default_rng(0))


def _reconstruct(inputs, targets, is_sentinel):
    """Put each span of the target back in place of its sentinel in the input."""
    spans, current = {}, None
    for t in targets:
        if is_sentinel(t):
            current = t
            spans[current] = []
        elif current is not None:
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans[t] if is_sentinel(t) else [t])
    return out


@pytest.fixture(scope="module")
def t5_with_sentinels(loaded):
    """The tiny T5 tokenizer with T5's 100 sentinel tokens added (as real T5 has them)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(loaded("t5").card.path)
    tok.add_special_tokens({"additional_special_tokens": [f"<extra_id_{k}>" for k in range(100)]})
    return tok


def test_span_corruption_reconstructs_the_text_with_real_sentinels(t5_with_sentinels):
    tok = t5_with_sentinels
    ids = list(tok(LONG)["input_ids"])
    special = [i in tok.all_special_ids for i in ids]
    sentinel_ids = set(tok.convert_tokens_to_ids([f"<extra_id_{k}>" for k in range(100)]))
    for seed in range(20):
        ex = examples.span_example(ids, special, tok, examples.Labeller(tok), seed)
        assert ex.stats["sentinels"] == "real" and not ex.notes
        assert ex.input_ids[-1] == tok.eos_token_id and ex.labels[-1] == tok.eos_token_id
        # <extra_id_0> opens the first span, and the target ends with the next sentinel
        assert ex.labels[0] == tok.convert_tokens_to_ids("<extra_id_0>")
        assert ex.labels[-2] == tok.convert_tokens_to_ids(f"<extra_id_{ex.stats['spans']}>")
        assert _reconstruct(ex.input_ids, ex.labels[:-1], lambda t: t in sentinel_ids) == ids
        assert ex.input_tokens[ex.input_ids.index(ex.labels[0])] == "<extra_id_0>"
        n_text = sum(not s for s in special)
        assert ex.stats["noise_tokens"] == round(0.15 * n_text)


def test_span_corruption_with_placeholders_says_so_and_reconstructs(loaded):
    lm = loaded("t5")
    ids, special = _tokens(lm, LONG)
    ex = objectives.build(ids, special, lm.tokenizer, seed=3)[2]
    assert ex.stats["sentinels"] == "placeholders"
    assert any("no sentinel tokens" in n for n in ex.notes)
    assert all(i is None for i, t in zip(ex.input_ids, ex.input_tokens) if t.startswith("<extra_id_"))
    # rebuilt from the shown tokens (placeholders named by position)
    rebuilt = _reconstruct(list(ex.input_tokens), list(ex.label_tokens[:-1]), lambda t: t.startswith("<extra_id_"))
    label = examples.Labeller(lm.tokenizer)
    assert rebuilt == [label(i) for i in ids]
    # the aligned rows: a column per token plus one per sentinel (and the target's tail)
    text, inp, tgt = ex.rows
    assert len(text.cells) == len(inp.cells) == len(tgt.cells) == len(ids) + ex.stats["spans"] + 2
    assert [c.id for c in text.cells if c.role != "gap"] == ids


# --- the zoo: what each bundled model was trained to do ---------------------------------------

@pytest.mark.parametrize("name,loss", [("bard-gpt", "causal"), ("bard-bert", "pll"), ("dates-t5", "seq2seq")])
def test_zoo_models_score_their_own_objective(name, loss):
    lm = models.load(f"zoo:{name}")
    text = "the 3rd of March, 1987" if name == "dates-t5" else "To be, or not to be, that is the question."
    rep = objectives.analyse(lm, text)
    assert rep.loss.objective == loss
    if name == "dates-t5":
        assert rep.target == "1987-03-03" and rep.loss.mean_nats < 0.01      # a model that is sure of its task
        wrong = objectives.analyse(lm, text, "1987-03-04")
        assert wrong.loss.tokens[-2].text == "4" and wrong.loss.tokens[-2].nats > 5
    else:
        assert 0.5 < rep.loss.mean_nats < 6          # a trained model: far below ln(4096) = 8.3
