"""tvlab tokens: the headless twin of the Tokens panel."""
import json


def test_json_tokens_are_exact_slices(tvlab, tiny_gpt2):
    text = "Hi 🙂 café שלום"
    r = tvlab("tokens", "--model", tiny_gpt2, "--text", text, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["model", "count", "words", "tokens_per_word", "tokens"]
    assert out["words"] == 3 and out["tokens_per_word"] == sum(not t["special"] for t in out["tokens"]) / 3   # Hi, café, שלום: an emoji is no word
    assert out["model"] == tiny_gpt2.name and out["count"] == len(out["tokens"]) > 0
    for t in out["tokens"]:
        assert list(t) == ["id", "piece", "text", "start", "end", "special"]
        assert t["text"] == text[t["start"]:t["end"]]
    assert any(t["text"] == "🙂" for t in out["tokens"])     # the second half of the split emoji


def test_json_special_tokens(tvlab, tiny_bert):
    r = tvlab("tokens", "--model", tiny_bert, "--text", "the bank", "--json")
    toks = json.loads(r.stdout)["tokens"]
    assert toks[0]["piece"] == "[CLS]" and toks[0]["special"] and toks[0]["text"] == ""
    assert toks[-1]["piece"] == "[SEP]" and toks[-1]["special"]
    assert not any(t["special"] for t in toks[1:-1])


def test_compare_prints_both(tvlab, tiny_gpt2, tiny_bert):
    r = tvlab("tokens", "--model", tiny_gpt2, "--text", "I sat on the river bank", "--compare", tiny_bert)
    assert r.returncode == 0, r.stderr
    assert f"{tiny_gpt2.name}: " in r.stdout and f"{tiny_bert.name}: " in r.stdout
    assert "Ġriv er" in r.stdout and "[CLS]" in r.stdout
    j = tvlab("tokens", "--model", tiny_gpt2, "--text", "I sat on the river bank", "--compare", tiny_bert, "--json")
    out = json.loads(j.stdout)
    assert out["model"] == tiny_gpt2.name and out["compare"]["model"] == tiny_bert.name
    assert out["compare"]["tokens"][0]["piece"] == "[CLS]"
    assert out["differing_spans"] >= 1


def test_empty_text_and_bad_model(tvlab, tiny_gpt2, tmp_path):
    r = tvlab("tokens", "--model", tiny_gpt2, "--text", "", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["count"] == 0
    bad = tvlab("tokens", "--model", tmp_path / "nope", "--text", "x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    none = tvlab("tokens", "--model", tiny_gpt2)
    assert none.returncode == 2 and "--text" in none.stderr
