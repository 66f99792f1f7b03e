"""capture() works for every kind and every awkward input, and never crashes."""
import numpy as np
import pytest

from lab.core import trace
from lab.core.errors import InputError

AWKWARD = [
    "emoji 🙂👩‍👩‍👧 and flags 🇫🇷",
    "right to left: שלום עולם مرحبا بالعالم",
    "control\x00chars\x07and\ttabs\r\n",
    "combining e\u0301 and a\u0308",
    "   ",
]


@pytest.fixture(scope="module", params=["gpt2", "bert", "t5"])
def lm(request, loaded):
    return loaded(request.param)


@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_text_captures(lm, text):
    tr = trace.capture(lm, text)
    assert len(tr.tokens) == len(tr.input_ids) == len(tr.offsets)
    for start, end in tr.offsets:
        assert 0 <= start <= end <= len(text)
    for stack, attn in tr.attentions.items():
        assert attn.ndim == 4 and np.isfinite(attn).all()


def test_empty_prompt_is_refused(lm):
    with pytest.raises(InputError, match="empty"):
        trace.capture(lm, "")


def test_too_long_prompt_is_truncated_with_a_warning(loaded):
    lm = loaded("gpt2")
    tr = trace.capture(lm, "word " * 500)
    assert len(tr.tokens) == lm.card.context
    assert any("only the first" in w for w in tr.warnings)


def test_stacks_per_kind(loaded):
    expect = {"gpt2": ["self"], "bert": ["self"], "t5": ["encoder", "decoder", "cross"]}
    for kind, stacks in expect.items():
        tr = trace.capture(loaded(kind), "The teacher taught the students.")
        assert tr.stacks == stacks
        for s in stacks:
            L, H, Q, K = tr.attentions[s].shape
            assert (Q, K) == (len(tr.query_tokens(s)), len(tr.key_tokens(s)))
