"""Tokens: offsets point at the right characters for every kind of input and tokenizer."""
import pytest

from lab.core import tokens
from lab.core.errors import InputError, ModelLoadError

KINDS = ["gpt2", "bert", "t5"]      # byte-level BPE, WordPiece, SentencePiece (Unigram)


@pytest.fixture(scope="module")
def toks(tiny_gpt2, tiny_bert, tiny_t5):
    return {k: tokens.load_tokenizer(str(f))[0] for k, f in (("gpt2", tiny_gpt2), ("bert", tiny_bert), ("t5", tiny_t5))}


def check_spans(tz):
    """Every token's text is the exact slice of the input; spans stay inside the text."""
    n = len(tz.text)
    for i in range(tz.count):
        d = tz.token_dict(i)
        assert 0 <= d["start"] <= d["end"] <= n
        assert d["text"] == tz.text[d["start"]:d["end"]]
        assert "\ufffd" not in d["text"]
        assert "\ufffd" not in tz.label(i) and "\ufffd" not in tz.label(i, readable=True)


@pytest.mark.parametrize("kind", KINDS)
def test_plain_text_covers_every_word(toks, kind):
    text = "I sat on the river bank"
    tz = tokens.tokenize(toks[kind], text, model=kind)
    check_spans(tz)
    covered = {c for i in range(tz.count) if not tz.special[i] for c in range(tz.starts[i], tz.ends[i])}
    assert covered >= {c for c, ch in enumerate(text) if not ch.isspace()}
    b = text.index("bank")
    first = tz.token_at(b)
    assert first >= 0 and tz.starts[first] <= b < tz.ends[first]
    assert "b" in tz.span_text(first)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_text(toks, kind):
    tz = tokens.tokenize(toks[kind], "", model=kind)
    check_spans(tz)
    assert all(tz.special)                 # only what the tokenizer adds ([CLS] [SEP], </s>)
    assert tz.chars_per_token == 0.0
    assert tz.to_json()["count"] == tz.count


@pytest.mark.parametrize("kind", KINDS)
def test_whitespace_only(toks, kind):
    text = "   \n\t  \n"
    tz = tokens.tokenize(toks[kind], text, model=kind)
    check_spans(tz)
    for i in range(tz.count):
        assert tz.span_text(i).strip() == ""
    if kind == "gpt2":                      # byte-level keeps every byte: newline and tab visible
        labels = [tz.label(i, readable=True) for i in range(tz.count)]
        assert any("↵" in x for x in labels) and any("⇥" in x for x in labels)


@pytest.mark.parametrize("kind", KINDS)
def test_control_characters(toks, kind):
    text = "a\x00b\x07c\x1bd\x7f"
    tz = tokens.tokenize(toks[kind], text, model=kind)
    check_spans(tz)
    d = tz.token_at(text.index("d"))
    assert d >= 0 and "d" in tz.span_text(d)
    for i in range(tz.count):             # no invisible characters on a chip
        assert not any(ord(c) < 32 for c in tz.label(i)) or tz.special[i]


def test_emoji_split_across_byte_tokens(toks):
    text = "Hi 🙂 café"
    tz = tokens.tokenize(toks["gpt2"], text)
    check_spans(tz)
    emoji = [i for i in range(tz.count) if "🙂" in tz.span_text(i)]
    assert len(emoji) >= 2                  # the tiny BPE splits the emoji's 4 bytes
    labels = "".join(tz.label(i) for i in emoji)
    assert "<0xF0>" in labels and "<0x9F>" in labels
    assert all(tz.split_character(i) for i in emoji)
    # The bytes of the tokens add up to the emoji's UTF-8 encoding.
    assert b"".join(tz.byte_values(i) for i in emoji).strip() == "🙂".encode()
    # The readable mode shows the leading space as a symbol, not as Ġ.
    assert tz.label(emoji[0]).startswith("Ġ") and tz.label(emoji[0], readable=True).startswith("␣")


@pytest.mark.parametrize("kind", KINDS)
def test_combining_marks_and_emoji(toks, kind):
    text = "e\u0301cole 👩‍👩‍👧 naïve"
    tz = tokens.tokenize(toks[kind], text, model=kind)
    check_spans(tz)
    n = tz.token_at(text.index("naïve") + 2)       # the ï
    assert n >= 0 and tz.starts[n] <= text.index("ï") < tz.ends[n]


@pytest.mark.parametrize("kind", KINDS)
def test_right_to_left(toks, kind):
    text = "שלום עולם and مرحبا"
    tz = tokens.tokenize(toks[kind], text, model=kind)
    check_spans(tz)
    # Offsets are in logical order: the Hebrew letters come before the Arabic ones.
    heb = [i for i in range(tz.count) if any("\u0590" <= c <= "\u05ff" for c in tz.span_text(i))]
    ara = [i for i in range(tz.count) if any("\u0600" <= c <= "\u06ff" for c in tz.span_text(i))]
    assert heb and ara and max(tz.ends[i] for i in heb) <= min(tz.starts[i] for i in ara)
    assert tz.token_at(text.index("م")) in ara


def test_one_megabyte_paste(toks):
    unit = "The teacher taught the students. naïve 🙂 שלום\n"
    text = (unit * (1_000_000 // len(unit.encode()) + 1))
    assert len(text.encode()) >= 1_000_000
    tz = tokens.tokenize(toks["gpt2"], text)
    assert tz.count > 100_000
    # spot-check spans all along the text
    for i in range(0, tz.count, 997):
        assert tz.span_text(i) == text[tz.starts[i]:tz.ends[i]]
    last = tz.count - 1
    assert tz.ends[last] == len(text)
    assert tz.span_text(last) == "\n"


def test_special_tokens_flagged_with_roles(toks):
    bert = tokens.tokenize(toks["bert"], "hello world")
    assert bert.special[0] and bert.special[-1]
    assert bert.role(0) == "CLS" and bert.role(bert.count - 1) == "SEP"
    assert bert.span_text(0) == "" and not any(bert.special[1:-1])
    t5 = tokens.tokenize(toks["t5"], "hello")
    assert t5.special[-1] and "EOS" in t5.role(t5.count - 1)
    gpt = tokens.tokenize(toks["gpt2"], "hi<|endoftext|>there")
    sp = [i for i in range(gpt.count) if gpt.special[i]]
    assert len(sp) == 1 and gpt.span_text(sp[0]) == "<|endoftext|>"


def test_markers_and_readable_labels(toks):
    gpt = tokens.tokenize(toks["gpt2"], "the bank\nteacher")
    assert any(gpt.label(i).startswith("Ġ") for i in range(gpt.count))
    assert not any("Ġ" in gpt.label(i, readable=True) for i in range(gpt.count))
    assert any(gpt.label(i, readable=True) == "↵" for i in range(gpt.count))
    t5 = tokens.tokenize(toks["t5"], "the bank")
    assert any(t5.label(i).startswith("▁") for i in range(t5.count))
    assert any(t5.label(i, readable=True).startswith("␣") for i in range(t5.count))
    bert = tokens.tokenize(toks["bert"], "teacherly")
    pieces = [bert.label(i) for i in range(bert.count)]
    assert any(p.startswith("##") for p in pieces)            # a word cut into word pieces
    assert not any(bert.label(i, readable=True).startswith("##") for i in range(bert.count))


def test_json_shape_and_csv(toks):
    tz = tokens.tokenize(toks["bert"], "Hi there", model="tiny")
    js = tz.to_json()
    assert set(js) == {"model", "count", "words", "tokens_per_word", "tokens"} and js["model"] == "tiny" and js["count"] == tz.count
    assert all(list(t) == ["id", "piece", "text", "start", "end", "special"] for t in js["tokens"])
    lines = tz.csv_text().splitlines()
    assert lines[0].startswith("index,id,piece,text,start,end,special")
    assert len(lines) == tz.count + 1


@pytest.mark.parametrize("pair", [("gpt2", "bert"), ("gpt2", "t5"), ("bert", "t5")])
def test_alignment_places_every_token_once(toks, pair):
    text = "I sat on the river bank. Hi 🙂 café, naïve\tx\n שלום"
    a = tokens.tokenize(toks[pair[0]], text, model=pair[0])
    b = tokens.tokenize(toks[pair[1]], text, model=pair[1])
    cmp = tokens.compare(a, b)
    assert sorted(i for s in cmp.spans for i in s.a) == list(range(a.count))
    assert sorted(i for s in cmp.spans for i in s.b) == list(range(b.count))
    starts = [s.start for s in cmp.spans if s.a and s.b]
    assert starts == sorted(starts)
    assert 0 < cmp.differing < len(cmp.spans)


def test_alignment_shows_where_tokenizers_differ(toks):
    text = "I sat on the river bank"
    a = tokens.tokenize(toks["gpt2"], text, model="gpt2")
    b = tokens.tokenize(toks["bert"], text, model="bert")
    cmp = tokens.compare(a, b)
    by_text = {text[s.start:s.end].strip(): s for s in cmp.spans}
    assert by_text["bank"].same                      # one token each
    assert not by_text["river"].same                 # 'Ġriv' 'er' against 'river'
    assert [a.pieces[i] for i in by_text["river"].a] == ["Ġriv", "er"]
    same = tokens.compare(a, tokens.tokenize(toks["gpt2"], text))
    assert same.differing == 0


def test_compare_needs_the_same_text(toks):
    a = tokens.tokenize(toks["gpt2"], "a")
    b = tokens.tokenize(toks["gpt2"], "b")
    with pytest.raises(InputError):
        tokens.compare(a, b)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(ModelLoadError):
        tokens.load_tokenizer(str(tmp_path / "missing"))


def test_byte_decoder_is_the_inverse_of_transformers_byte_map():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from lab.core import tokens

    dec = tokens.byte_decoder()
    assert len(dec) == 256 and sorted(dec.values()) == list(range(256))
    assert dec["Ġ"] == ord(" ") and dec["Ċ"] == ord("\n") and dec["!"] == ord("!")
    assert all(dec[c] == b for b, c in bytes_to_unicode().items())


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_per_word_is_the_price_of_a_text(toks, kind):
    """Words are runs of letters/digits ('tis and year-over-year's parts count once each);
    tokens per word counts the text's tokens, punctuation included, added special tokens not."""
    text = "Whether 'tis nobler, year-over-year: 120 bps."
    tz = tokens.tokenize(toks[kind], text, model=kind)
    assert tz.words == 8       # Whether, tis, nobler, year, over, year, 120, bps
    n_text = sum(1 for s in tz.special if not s)
    assert tz.tokens_per_word == pytest.approx(n_text / 8)
    d = tz.to_json()
    assert d["words"] == 8 and d["tokens_per_word"] == pytest.approx(n_text / 8)
    empty = tokens.tokenize(toks[kind], "...", model=kind)
    assert empty.words == 0 and empty.tokens_per_word == 0.0


def test_modern_finance_text_costs_more_tokens_per_word_than_shakespeare_in_bard_gpt():
    """The domain-adaptation lesson's figures, measured with bard-gpt's own tokenizer."""
    try:
        tok = tokens.load_tokenizer("zoo:bard-gpt")[0]
    except Exception as err:      # the zoo is part of the repository; say why if it is not here
        pytest.skip(f"zoo:bard-gpt not available: {err}")
    finance = ("Quarterly EBITDA margins expanded 120 basis points year-over-year, beating consensus "
               "estimates, and the CFO reiterated full-year guidance on resilient free cash flow and share buybacks.")
    hamlet = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings "
              "and arrows of outrageous fortune, or to take arms against a sea of troubles, and by opposing end them.")
    f = tokens.tokenize(tok, finance).tokens_per_word
    h = tokens.tokenize(tok, hamlet).tokens_per_word
    assert f == pytest.approx(2.64, abs=0.01) and h == pytest.approx(1.46, abs=0.01)
