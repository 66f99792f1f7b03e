"""Model twins: each twin's logits equal a direct forward of that model / ONNX session; the
next-token comparison built on them."""
import copy

import numpy as np
import pytest
import torch

from lab.core.errors import InputError
from lab.core.precision import next_token, twins

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def direct(model, spec, ids, dec=None):
    m = copy.deepcopy(model).to(DTYPES[spec]).eval()
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    if dec is not None:
        kwargs["decoder_input_ids"] = dec
    with torch.no_grad():
        return m(**kwargs).logits.float()


@pytest.mark.parametrize("kind", ["gpt2", "bert", "t5"])
@pytest.mark.parametrize("spec", ["fp32", "fp16", "bf16"])
def test_torch_twin_logits_equal_a_direct_forward(loaded, kind, spec):
    lm = loaded(kind)
    ids = torch.tensor([lm.tokenizer("The cat sat on the mat.")["input_ids"]])
    twin = twins.open_twin(lm.model, lm.tokenizer, spec)
    assert twin.kind == lm.kind and twin.spec == spec and twin.device == "cpu"
    dec = torch.tensor([twin.decoder_start() + [5, 7]]) if lm.kind == "encoder-decoder" else None
    got = twin.logits(ids, dec) if dec is not None else twin.logits(ids)
    assert got.dtype == torch.float32 and got.shape[:2] == (1, (dec if dec is not None else ids).shape[1])
    assert torch.equal(got, direct(lm.model, spec, ids, dec))
    assert next(lm.model.parameters()).dtype == torch.float32      # the live model is untouched
    assert twin.shares_weights == (spec == "fp32")
    twin.close()


def test_twin_accepts_lists_and_numpy_and_checks_inputs(loaded):
    lm = loaded("gpt2")
    twin = twins.open_twin(lm.model, lm.tokenizer, "bf16")
    ids = lm.tokenizer("to be or not")["input_ids"]
    a, b = twin.logits(ids), twin.logits(np.asarray([ids]))
    assert torch.equal(a, b) and a.shape[0] == 1
    with pytest.raises(InputError, match="only apply to encoder-decoder"):
        twin.logits(ids, [0])
    with pytest.raises(InputError, match="Unknown precision"):
        twins.open_twin(lm.model, lm.tokenizer, "fp8")
    with pytest.raises(InputError, match="No ONNX file"):
        twins.open_twin(lm.model, lm.tokenizer, "/nonexistent/model-int8.onnx")


@pytest.fixture(scope="module")
def converted(loaded, tmp_path_factory):
    """gpt2 and t5 converted once to fp32 + int8 ONNX (the converter's files)."""
    from lab.core import precision

    out = {}
    for kind in ("gpt2", "t5"):
        folder = tmp_path_factory.mktemp(f"onnx-{kind}")
        precision.convert(loaded(kind), folder, ("fp32", "int8"), force=True, latency_runs=1)
        out[kind] = folder
    return out


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_onnx_twin_logits_equal_the_onnx_session(loaded, converted, kind):
    import onnxruntime as ort

    lm = loaded(kind)
    path = twins.converted_file(converted[kind], "int8", lm.card.ref or lm.card.name)
    assert path is not None and path.name == "model-int8.onnx"
    assert twins.converted_file(converted[kind], "int8", "some other model") is None
    assert twins.converted_file(converted[kind], "int4") is None
    twin = twins.open_twin(lm.model, lm.tokenizer, str(path))
    assert twin.spec == "onnx" and twin.label == "int8 (ONNX)"
    ids = np.asarray([lm.tokenizer("Dog bites man.")["input_ids"]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    dec = None
    if lm.kind == "encoder-decoder":
        dec = np.asarray([twin.decoder_start() + [4, 9, 11]], dtype=np.int64)
        feed["decoder_input_ids"] = dec
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, feed)[0]
    got = twin.logits(ids, dec) if dec is not None else twin.logits(ids)
    assert np.array_equal(got.numpy(), want)
    # the fp32 ONNX file agrees with torch fp32 closely; int8 less so, but the same shape
    fp32 = twins.open_twin(lm.model, lm.tokenizer, converted[kind] / "model-fp32.onnx")
    ref = twins.open_twin(lm.model, lm.tokenizer, "fp32")
    args = (ids, dec) if dec is not None else (ids,)
    assert torch.allclose(fp32.logits(*args), ref.logits(*args), atol=1e-4)


def test_onnx_file_of_another_kind_is_refused(loaded, converted):
    lm = loaded("gpt2")
    with pytest.raises(InputError, match="does not match"):
        twins.open_twin(lm.model, lm.tokenizer, converted["t5"] / "model-int8.onnx")


def test_next_token_comparison_side_by_side(loaded, converted):
    lm = loaded("gpt2")
    specs = ["fp32", "fp16", "bf16", str(converted["gpt2"] / "model-int8.onnx")]
    ts = [twins.open_twin(lm.model, lm.tokenizer, s) for s in specs]
    text = "The cat sat on the"
    cmp = next_token.compare(ts, text)
    assert [r.label for r in cmp.rows] == ["torch fp32", "torch fp16", "torch bf16", "int8 (ONNX)"]
    ids = lm.tokenizer(text)["input_ids"]
    assert cmp.position == len(ids) - 1
    with torch.no_grad():
        p = torch.softmax(lm.model(torch.tensor([ids])).logits[0, -1].double(), -1)
    ref = cmp.reference
    assert [c.token_id for c in ref.top] == p.topk(5).indices.tolist()
    assert ref.top[0].prob == pytest.approx(float(p.max()))
    assert ref.kl == 0 and ref.agreement == 1 and ref.top1_agrees
    for row in cmp.rows[1:]:
        assert not row.error and len(row.top) == 5
        assert row.kl is not None and row.kl >= 0 and 0 <= row.agreement <= 1
        q = torch.softmax(ts[cmp.rows.index(row)].logits([ids])[0, -1].double(), -1)
        assert row.kl == pytest.approx(float((p * (p.log() - q.log())).sum()), abs=1e-9)
        assert row.top1_agrees == (int(q.argmax()) == int(p.argmax()))
    assert cmp.rows[3].kl > cmp.rows[1].kl       # int8 moves the distribution more than fp16


def test_next_token_positions_for_encoders_and_seq2seq(loaded):
    bert = loaded("bert")
    tw = [twins.open_twin(bert.model, bert.tokenizer, s) for s in ("fp32", "bf16")]
    cmp = next_token.compare(tw, "the cat [MASK] on the mat")
    ids = bert.tokenizer("the cat [MASK] on the mat")["input_ids"]
    assert cmp.position == ids.index(bert.tokenizer.mask_token_id)
    t5 = loaded("t5")
    tw = [twins.open_twin(t5.model, t5.tokenizer, s) for s in ("fp32", "fp16")]
    cmp = next_token.compare(tw, "Dog bites man.", target="The")
    assert cmp.position == len(tw[0].decoder_start() + t5.tokenizer("The", add_special_tokens=False)["input_ids"]) - 1
    with pytest.raises(InputError, match="empty"):
        next_token.compare(tw, "")
