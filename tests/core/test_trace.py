"""Trace capture, aggregates and the logit lens, checked against transformers itself."""
import numpy as np
import pytest

from lab.core import models, trace
from lab.core.errors import InputError

SENTENCE = "The teacher taught the students with the book."


@pytest.fixture(scope="module")
def lms(loaded):
    return {k: loaded(k) for k in ("gpt2", "llama", "bert", "t5")}


def _reference(folder, kind, text, target_ids=None):
    """What plain transformers returns with eager attention and output_attentions=True."""
    import torch
    import transformers as tf

    cls = {"gpt2": tf.AutoModelForCausalLM, "llama": tf.AutoModelForCausalLM,
           "bert": tf.AutoModelForMaskedLM, "t5": tf.AutoModelForSeq2SeqLM}[kind]
    model = cls.from_pretrained(str(folder), attn_implementation="eager").eval()
    tok = tf.AutoTokenizer.from_pretrained(str(folder))
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        if kind == "t5":
            out = model(input_ids=ids, decoder_input_ids=torch.tensor([target_ids]), output_attentions=True)
            return {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions,
                    "cross": out.cross_attentions}, out.logits[0].numpy()
        out = model(input_ids=ids, output_attentions=True)
        return {"self": out.attentions}, out.logits[0].numpy()


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "t5"])
@pytest.mark.parametrize("storage", ["host", "resident", "packed"])
def test_attention_is_the_models_own(lms, kind, storage, request, monkeypatch):
    lm = lms[kind]
    if storage == "packed":   # what long inputs get: causal stacks keep their lower triangle
        monkeypatch.setattr(trace.arrays, "PACK_CAUSAL_ABOVE_BYTES", -1)
    tr = trace.capture(lm, SENTENCE, "the book" if kind == "t5" else None, resident=storage == "resident")
    if storage == "packed":
        packed = {s for s, a in tr.attentions.items() if isinstance(a, trace.CausalArray)}
        assert packed == {s for s in tr.stacks if tr.causal(s)}
    folder = request.getfixturevalue(f"tiny_{kind}")
    ref, ref_logits = _reference(folder, kind, SENTENCE, tr.target_ids.tolist() if kind == "t5" else None)
    assert set(tr.stacks) == set(ref)
    for stack, layers in ref.items():
        a = np.asarray(tr.attentions[stack])
        assert a.dtype == np.float32 and a.flags.c_contiguous
        expected = np.stack([x[0].numpy() for x in layers])
        assert a.shape == expected.shape
        np.testing.assert_allclose(a, expected, atol=1e-6, rtol=0)
        # every row of every head is a distribution
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
        mask = tr.mask(stack)
        if stack in ("self", "decoder") and kind != "bert":
            assert mask is not None and mask.sum() == a.shape[2] * (a.shape[2] - 1) // 2
            assert np.all(a[:, :, mask] == 0), "a decoder row put weight on a future token"
        else:
            assert mask is None
        # head() (what the head view draws) is the same numbers
        np.testing.assert_array_equal(tr.head(stack, 1, 2), a[1, 2])
    np.testing.assert_allclose(np.asarray(tr.logits), ref_logits, atol=1e-5)
    if kind == "t5":
        assert tr.attentions["cross"].shape[2:] == (len(tr.target_tokens), len(tr.tokens))
        assert tr.query_tokens("cross") == tr.target_tokens and tr.key_tokens("cross") == tr.tokens


def test_resident_capture_moves_only_what_is_shown(lms):
    tr = trace.capture(lms["gpt2"], SENTENCE, resident=True, thumb_size=4)
    a = tr.attentions["self"]
    assert isinstance(a, trace.DeviceArray) and a.nbytes == 0
    assert tr.head_ready("self", 0, 0) and not tr.head_ready("self", 1, 3)
    assert tr.stored_bytes()["host"] == 15 * 15 * 4      # one head crossed over, nothing else
    assert tr.thumbnails("self", 4).shape == (2, 4, 4, 4) and tr.entropy("self").shape == (2, 4)
    assert tr.stored_bytes()["host"] < a.device_bytes   # only a head and thumbnails crossed over
    h = tr.head("self", 1, 3)
    assert tr.head_ready("self", 1, 3) and h.dtype == np.float32
    host = trace.capture(lms["gpt2"], SENTENCE)
    np.testing.assert_allclose(tr.aggregate("self", 1, "rollout"), host.aggregate("self", 1, "rollout"), atol=1e-6)
    np.testing.assert_allclose(tr.entropy("self"), host.entropy("self"), atol=1e-5)
    np.testing.assert_allclose(tr.thumbnails("self", 4), host.thumbnails("self", 4), atol=1e-7)
    assert tr.logits[-1].shape == host.logits[-1].shape


def test_aggregates():
    rng = np.random.default_rng(0)
    raw = rng.random((3, 4, 5, 5)).astype(np.float32)
    attn = raw / raw.sum(-1, keepdims=True)
    np.testing.assert_allclose(trace.mean_over_heads(attn[1]), attn[1].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(trace.max_over_heads(attn[1]), attn[1].max(0))
    # rollout: identity attention stays identity; rows stay distributions
    eye = np.broadcast_to(np.eye(5, dtype=np.float32), (3, 4, 5, 5))
    np.testing.assert_allclose(trace.rollout(eye)[-1], np.eye(5), atol=1e-6)
    r = trace.rollout(attn)
    assert r.shape == (3, 5, 5)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-5)
    a0 = 0.5 * attn[0].mean(0) + 0.5 * np.eye(5)
    a1 = 0.5 * attn[1].mean(0) + 0.5 * np.eye(5)
    np.testing.assert_allclose(r[1], a1 @ a0, atol=1e-5)
    # entropy: a uniform head has log(K), a one-hot head 0
    uniform = np.full((1, 2, 4, 4), 0.25, np.float32)
    uniform[0, 1] = np.eye(4)
    ent = trace.head_entropy(uniform)
    np.testing.assert_allclose(ent, [[np.log(4), 0.0]], atol=1e-6)
    # thumbnails keep the maximum of each block
    big = np.zeros((1, 1, 10, 10), np.float32)
    big[0, 0, 7, 3] = 0.9
    th = trace.thumbnails(big, size=5)
    assert th.shape == (1, 1, 5, 5) and th[0, 0, 3, 1] == pytest.approx(0.9) and th.sum() == pytest.approx(0.9)


def test_hide_first_token_renormalises():
    m = np.array([[1.0, 0.0, 0.0],
                  [0.5, 0.5, 0.0],
                  [0.6, 0.3, 0.1]], np.float32)
    out = trace.hide_first_token(m)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.75, 0.25]], atol=1e-6)
    cross = trace.hide_first_token(m, drop_query=False)
    assert cross.shape == (3, 2) and np.isnan(cross[0]).all()


def test_grouped_query_heads(lms):
    tr = trace.capture(lms["llama"], SENTENCE)
    assert tr.kv_heads["self"] == 2
    assert tr.kv_groups("self") == [[0, 1], [2, 3]]
    assert trace.capture(lms["gpt2"], SENTENCE).kv_groups("self") == [[0], [1], [2], [3]]


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "t5"])
def test_logit_lens_last_layer_is_the_models_logits(lms, kind):
    lm = lms[kind]
    tr = trace.capture(lm, SENTENCE, "the book" if kind == "t5" else None)
    stack = "decoder" if kind == "t5" else "self"
    for pos in (0, 3, -1):
        lens = trace.logit_lens(lm, tr, pos, k=5)
        n_layers = tr.hidden[stack].shape[0]
        assert len(lens.layers) == n_layers
        np.testing.assert_allclose(lens.logits[-1], tr.logits[pos], atol=1e-4)
        assert lens.max_abs_diff_last < 1e-4
        assert lens.layers[-1].final_rank == 1
        assert lens.layers[-1].top_ids[0] == int(np.argmax(tr.logits[pos]))
        assert all(len(layer.top_tokens) == 5 for layer in lens.layers)
        assert all(p >= q for layer in lens.layers for p, q in zip(layer.top_probs, layer.top_probs[1:]))


def test_logit_lens_norms_each_layer_once(lms):
    """Intermediate layers go through ln_f; the last one (already normed by GPT-2) does not."""
    import torch

    lm = lms["gpt2"]
    tr = trace.capture(lm, SENTENCE)
    lens = trace.logit_lens(lm, tr, 2)
    h = torch.from_numpy(np.asarray(tr.hidden["self"][:, 2]))
    with torch.no_grad():
        mid = lm.model.lm_head(lm.model.transformer.ln_f(h[1])).numpy()
        twice = lm.model.lm_head(lm.model.transformer.ln_f(h[-1])).numpy()
    np.testing.assert_allclose(lens.logits[1], mid, atol=1e-5)
    assert np.abs(twice - tr.logits[2]).max() > 1e-3   # norming twice would be visibly wrong
    assert lens.norm == "transformer.ln_f"


def test_long_input_is_truncated_with_a_warning(lms):
    lm = lms["gpt2"]     # 64 positions
    tr = trace.capture(lm, " ".join(["teacher"] * 200))
    assert tr.attentions["self"].shape[2] == 64 and len(tr.tokens) == 64
    assert any("64" in w and "first" in w for w in tr.warnings)


def test_target_on_a_decoder_only_model_is_ignored_with_a_note(lms):
    tr = trace.capture(lms["gpt2"], SENTENCE, target="le livre")
    assert tr.stacks == ["self"] and tr.target_tokens == []
    assert any("ignored" in w for w in tr.warnings)


def test_sdpa_model_is_captured_with_eager_and_restored(lms):
    lm = lms["llama"]
    assert lm.model.config._attn_implementation == "sdpa"
    tr = trace.capture(lm, SENTENCE)
    assert any("eager" in n for n in tr.notes)
    np.testing.assert_allclose(tr.attentions["self"].sum(-1), 1.0, atol=1e-5)
    assert lm.model.config._attn_implementation == "sdpa"


def test_falls_back_to_set_attn_implementation(lms, monkeypatch):
    """If switching the configs is not enough (another transformers version), the capture
    switches the whole model and still returns the weights."""
    import contextlib

    monkeypatch.setattr(trace.forward, "eager_attention", lambda lm: contextlib.nullcontext())
    tr = trace.capture(lms["t5"], SENTENCE, "the book")
    assert set(tr.stacks) == {"encoder", "decoder", "cross"}
    np.testing.assert_allclose(tr.attentions["cross"].sum(-1), 1.0, atol=1e-5)
    assert lms["t5"].model.config._attn_implementation == "sdpa"


def test_empty_prompt_and_bad_lens_position(lms):
    with pytest.raises(InputError):
        trace.capture(lms["gpt2"], "")
    tr = trace.capture(lms["gpt2"], SENTENCE)
    with pytest.raises(InputError):
        trace.logit_lens(lms["gpt2"], tr, 500)
    with pytest.raises(InputError):
        tr.aggregate("self", 0, "median")


def test_long_inputs_store_float16_near_one_gigabyte():
    """2,048 tokens on 12 layers x 12 heads: the stored attentions stay about 1 GB, and a
    decoder's (the lower triangle only) about half of that."""
    assert trace.attention_bytes(12, 12, 2048, 2048) <= 1.25e9
    assert trace.attention_bytes(12, 12, 2048, 2048, causal=True) == 12 * 12 * 2048 * 2049 + 16 * 2048
    assert trace.attention_bytes(2, 4, 15, 15) == 2 * 4 * 15 * 15 * 4   # small inputs stay exact float32
    assert trace.attention_bytes(2, 4, 15, 15, causal=True) == 2 * 4 * 15 * 15 * 4


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_packed_causal_storage_reads_exactly_like_the_full_array(lms, kind, monkeypatch):
    target = "the book" if kind == "t5" else None
    full = trace.capture(lms[kind], SENTENCE, target)
    monkeypatch.setattr(trace.arrays, "PACK_CAUSAL_ABOVE_BYTES", -1)
    packed = trace.capture(lms[kind], SENTENCE, target)
    stack = "self" if kind == "gpt2" else "decoder"
    a, ref = packed.attentions[stack], full.attentions[stack]
    assert isinstance(a, trace.CausalArray) and a.shape == ref.shape and len(a) == len(ref)
    L, H, Q, K = a.shape
    assert a.nbytes == trace.attention_bytes(L, H, Q, K, causal=True) < ref.nbytes
    assert packed.stored_bytes()["host"] < full.stored_bytes()["host"]
    for index in [1, -1, (1, 2), (-1, 0, 3), (1, slice(None), 2), (0, 1, slice(2, 5), slice(None, 4)),
                  (slice(None), 0), (Ellipsis, 0)]:
        np.testing.assert_array_equal(a[index], ref[index])
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float32), ref)
    np.testing.assert_array_equal(packed.head(stack, 1, 2), full.head(stack, 1, 2))
    np.testing.assert_array_equal(packed.layer_heads(stack, 0), full.layer_heads(stack, 0))
    np.testing.assert_array_equal(packed.thumbnails(stack, size=4), full.thumbnails(stack, size=4))
    np.testing.assert_array_equal(packed.thumbnails(stack), full.thumbnails(stack))
    np.testing.assert_allclose(packed.entropy(stack), full.entropy(stack), rtol=0, atol=1e-6)
    for how in ("mean", "max", "rollout"):
        np.testing.assert_allclose(packed.aggregate(stack, 1, how), full.aggregate(stack, 1, how), atol=1e-6)
    np.testing.assert_array_equal(trace.npz_arrays(packed)[stack], trace.npz_arrays(full)[stack])
    assert float(a.sum()) == pytest.approx(float(ref.sum()))   # numpy methods still answer


@pytest.mark.parametrize("ref", ["zoo:bard-gpt", "zoo:dates-t5"])
def test_zoo_models_lens_and_rows(ref):
    """The bundled, trained models: rows are distributions and the lens ends at the model's logits."""
    lm = models.load(ref)
    tr = trace.capture(lm, "The teacher taught the students with the book." if "gpt" in ref else "March 3, 2021",
                       "2021-03-03" if "t5" in ref else None)
    for stack in tr.stacks:
        np.testing.assert_allclose(np.asarray(tr.attentions[stack]).sum(-1), 1.0, atol=1e-4)
    lens = trace.logit_lens(lm, tr, -1)
    assert lens.max_abs_diff_last < 1e-3 and lens.layers[-1].final_rank == 1


def test_causal_stack_with_weight_on_the_future_is_kept_whole(monkeypatch):
    """Packing drops the upper triangle only when it is exactly zero."""
    import torch

    monkeypatch.setattr(trace.arrays, "PACK_CAUSAL_ABOVE_BYTES", -1)
    tri = torch.ones(1, 2, 5, 5).tril()
    tri = tri / tri.sum(-1, keepdim=True)
    assert isinstance(trace.arrays._store_host((tri, tri), causal=True), trace.CausalArray)
    leaky = tri.clone()
    leaky[0, 1, 0, 4] = 0.25
    stored = trace.arrays._store_host((tri, leaky), causal=True)
    assert isinstance(stored, np.ndarray) and stored[1, 1, 0, 4] == np.float32(0.25)
