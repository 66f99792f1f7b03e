"""tvlab objectives: the headless twin of the Objectives panel, end to end."""
import json

import pytest
import torch

TEXT = "To be, or not to be, that is the question."


def test_json_examples_and_per_token_loss(tvlab, tiny_gpt2, loaded):
    r = tvlab("objectives", "--model", tiny_gpt2, "--text", TEXT, "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == tiny_gpt2.name and out["kind"] == "decoder-only" and out["own_objective"] == "causal"
    causal, masked, span = out["examples"]
    assert [causal["objective"], masked["objective"], span["objective"]] == ["causal", "masked", "span"]
    assert causal["input_ids"][1:] == causal["labels"][:-1]
    assert masked["stats"]["seed"] == 3 and span["stats"]["sentinels"] == "placeholders"
    assert sum(lab != -100 for lab in masked["labels"]) == masked["stats"]["chosen"]
    loss = out["loss"]
    assert loss["objective"] == "causal" and loss["tokens"][0]["nats"] is None
    ids = torch.tensor([[t["id"] for t in loss["tokens"]]])
    with torch.no_grad():
        ref = loaded("gpt2").model(input_ids=ids, labels=ids).loss.item()
    assert loss["mean_nats"] == pytest.approx(ref, abs=1e-5)
    assert loss["tokens"][1]["bits"] == pytest.approx(loss["tokens"][1]["nats"] / 0.6931471805599453)
    assert len(loss["tokens"][1]["top"]) == 5


def test_seq2seq_target_and_table(tvlab, tiny_t5, loaded):
    r = tvlab("objectives", "--model", tiny_t5, "--text", "I sat on the river bank.", "--target", "the water",
              "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["target"] == "the water" and out["target_source"] == "given"
    lm = loaded("t5")
    src = torch.tensor([lm.tokenizer("I sat on the river bank.")["input_ids"]])
    tgt = torch.tensor([lm.tokenizer(text_target="the water")["input_ids"]])
    with torch.no_grad():
        ref = lm.model(input_ids=src, labels=tgt).loss.item()
    assert out["loss"]["mean_nats"] == pytest.approx(ref, abs=1e-5)
    t = tvlab("objectives", "--model", tiny_t5, "--text", "I sat on the river bank.")
    assert t.returncode == 0, t.stderr
    assert "Span corruption" in t.stdout and "perplexity" in t.stdout
    assert "greedy output" in t.stderr          # the note says what was scored


def test_bad_input_is_one_line(tvlab, tiny_gpt2, one_line_error):
    assert "empty" in one_line_error(tvlab("objectives", "--model", tiny_gpt2, "--text", ""))
    assert "at least two tokens" in one_line_error(tvlab("objectives", "--model", tiny_gpt2, "--text", "a"))
    assert "seed" in one_line_error(tvlab("objectives", "--model", tiny_gpt2, "--text", TEXT, "--seed", "-2"))
    r = tvlab("objectives", "--model", "zoo:no-such-model", "--text", TEXT)
    assert r.returncode == 2 and "no-such-model" in one_line_error(r)
