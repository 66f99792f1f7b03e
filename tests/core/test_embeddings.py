"""Embeddings: the numbers are the model's own (rows, neighbours, positions, hidden states)."""
import numpy as np
import pytest
import torch

from lab.core import embeddings as E
from lab.core import tokens, trace
from lab.core.errors import InputError


@pytest.fixture(scope="module")
def gpt2(loaded):
    return loaded("gpt2")


@pytest.fixture(scope="module")
def llama(loaded):
    return loaded("llama")


@pytest.fixture(scope="module")
def bert(loaded):
    return loaded("bert")


@pytest.fixture(scope="module")
def t5(loaded):
    return loaded("t5")


def brute_force(weight: torch.Tensor, token_id: int, k: int):
    w = weight.detach().float()
    cos = torch.nn.functional.cosine_similarity(w, w[token_id][None, :], dim=1)
    cos[token_id] = -2
    order = torch.argsort(cos, descending=True)[:k]
    return order.tolist(), cos[order].numpy()


def test_rows_are_the_embedding_matrix(gpt2):
    tz = tokens.tokenize(gpt2.tokenizer, "I sat on the river bank")
    r = E.rows(gpt2, tz.ids)
    w = gpt2.model.get_input_embeddings().weight.detach().numpy()
    np.testing.assert_array_equal(r.vectors, w[tz.ids])
    np.testing.assert_allclose(r.norms, np.linalg.norm(w[tz.ids], axis=1), rtol=1e-6)
    assert r.csv_text().splitlines()[0].startswith("position,id,token,norm,d0")


def test_neighbours_match_brute_force_cosine(gpt2):
    tid = tokens.tokenize(gpt2.tokenizer, " bank").ids[0]
    nb = E.neighbours(gpt2, tid, k=10)
    want_ids, want_cos = brute_force(gpt2.model.get_input_embeddings().weight, tid, 10)
    assert [n.id for n in nb.items] == want_ids
    np.testing.assert_allclose([n.cosine for n in nb.items], want_cos, rtol=1e-5, atol=1e-6)
    assert tid not in [n.id for n in nb.items] and len(nb.items) == 10
    assert nb.token_label == "␣bank"


def test_normalised_matrix_is_cached_per_model(gpt2, llama):
    a = E.index(gpt2)
    assert E.index(gpt2) is a
    assert E.index(llama) is not a
    np.testing.assert_allclose(np.linalg.norm(a.unit, axis=1), 1.0, rtol=1e-5)


def test_untied_output_embeddings_give_their_own_neighbours(llama, gpt2):
    assert E.tied(gpt2) and not E.tied(llama)
    tid = tokens.tokenize(llama.tokenizer, " bank").ids[0]
    out = E.neighbours(llama, tid, k=10, which=E.OUTPUT)
    want_ids, _ = brute_force(llama.model.get_output_embeddings().weight, tid, 10)
    assert [n.id for n in out.items] == want_ids
    inp = E.neighbours(llama, tid, k=10, which=E.INPUT)
    assert [n.id for n in inp.items] != [n.id for n in out.items]


def test_search_skips_rows_without_a_token():
    m = np.eye(4, dtype=np.float32)
    m[3] = m[0]                                   # a padding row identical to row 0
    idx = E.NeighbourIndex.from_matrix(m, valid=3)
    ids, cos = idx.search(m[0], k=3, exclude=(0,))
    assert 3 not in ids.tolist() and len(ids) == 2
    zero_ids, _ = idx.search(np.zeros(4), k=3)
    assert len(zero_ids) == 0


def test_pca_finds_the_main_direction():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    pts = np.outer(t, [3.0, 4.0, 0.0]) + rng.normal(scale=0.01, size=(200, 3))
    coords, ratio = E.pca(pts)
    assert coords.shape == (200, 2) and ratio[0] > 0.99
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.999


def test_projection_labels_prompt_tokens_and_neighbours(gpt2):
    tz = tokens.tokenize(gpt2.tokenizer, "dog bites man")
    p = E.projection(gpt2, tz.ids, per_token=3)
    assert p.kinds.count("prompt") == len(set(tz.ids))
    assert p.kinds.count("neighbour") == 3 * len(set(tz.ids))
    assert p.coords.shape == (len(p.ids), 2) and np.isfinite(p.coords).all()
    assert "␣bites" in p.labels or "␣b" in "".join(p.labels)


def test_learned_positions_are_the_model_table(gpt2, bert):
    pos = E.positional(gpt2, 16)
    assert pos.kind == "learned"
    np.testing.assert_array_equal(pos.matrix, gpt2.model.transformer.wpe.weight.detach().numpy()[:16])
    assert pos.similarity.shape == (16, 16)
    np.testing.assert_allclose(np.diag(pos.similarity), 1.0, rtol=1e-5)
    assert E.positional(bert, 8).kind == "learned"


def test_rope_similarity_depends_only_on_distance(llama):
    pos = E.positional(llama, 20)
    assert pos.kind == "rope"
    inv = llama.model.model.rotary_emb.inv_freq.numpy()
    assert pos.matrix.shape == (20, 2 * len(inv))
    np.testing.assert_allclose(pos.matrix[3, 0], np.cos(3 * inv[0]), rtol=1e-6)
    s = pos.similarity
    for d in (1, 5):                              # each diagonal is constant (a Toeplitz matrix)
        diag = np.diag(s, d)
        np.testing.assert_allclose(diag, diag[0], atol=1e-5)


def test_sinusoidal_formula():
    pe = E.sinusoidal(10, 8)
    assert pe[1, 0] == pytest.approx(np.sin(1.0)) and pe[1, 1] == pytest.approx(np.cos(1.0))
    assert pe[5, 2] == pytest.approx(np.sin(5 / 10000 ** (2 / 8)), rel=1e-6)


def test_t5_relative_bias(t5):
    pos = E.positional(t5, 12)
    assert pos.kind == "relative" and pos.matrix.shape == (12, 12)
    attn = t5.model.encoder.block[0].layer[0].SelfAttention
    want = attn.compute_bias(12, 12)[0].float().mean(0).detach().numpy()
    np.testing.assert_allclose(pos.matrix, want, rtol=1e-6)


def test_bank_preset_matches_the_captured_hidden_states(gpt2):
    a, wa, b, wb = E.BANK_PRESET
    cs = E.context_similarity(gpt2, a, wa, b, wb)
    assert cs.layers[0] == "embeddings" and len(cs.cosine) == gpt2.card.layers + 1
    ta, tb = trace.capture(gpt2, a), trace.capture(gpt2, b)
    ia = [i for i, t in enumerate(ta.tokens) if "bank" in t]
    ib = [i for i, t in enumerate(tb.tokens) if "bank" in t]
    assert cs.positions_a == ia and cs.positions_b == ib
    ha, hb = ta.hidden["self"][:, ia[0]], tb.hidden["self"][:, ib[0]]
    want = (ha * hb).sum(1) / (np.linalg.norm(ha, axis=1) * np.linalg.norm(hb, axis=1))
    np.testing.assert_allclose(cs.cosine, want, rtol=1e-4, atol=1e-5)
    assert len(cs.csv_text().splitlines()) == len(cs.layers) + 1


def test_context_similarity_on_encoder_and_seq2seq(bert, t5):
    for lm in (bert, t5):
        cs = E.context_similarity(lm, *E.BANK_PRESET)
        assert np.isfinite(cs.cosine).all() and len(cs.cosine) == lm.card.layers + 1
    cs = E.context_similarity(t5, *E.BANK_PRESET)
    assert "".join(cs.tokens_a).replace("▁", "").replace("␣", "") == "bank"   # several pieces
    assert cs.note


def test_context_similarity_errors(gpt2):
    with pytest.raises(InputError):
        E.context_similarity(gpt2, "I sat on the river bank", "money", "cash at the bank")
    with pytest.raises(InputError):
        E.context_similarity(gpt2, "", "bank", "the bank")
    with pytest.raises(InputError):
        E.context_similarity(gpt2, "bank", "", "bank")


def test_context_similarity_says_what_layer_zero_compares(gpt2, t5):
    """GPT-2 adds a position row to the token row: identical words at different positions
    start below 1, and the token rows alone compare at exactly 1."""
    cs = E.context_similarity(gpt2, *E.BANK_PRESET)
    assert cs.positions_a != cs.positions_b and cs.position_added
    assert cs.cosine[0] < 0.9999 and cs.token_cosine == pytest.approx(1.0, abs=1e-6)
    assert "position" in cs.layer0 and "wpe" in cs.layer0
    assert cs.csv_text().splitlines()[1].endswith(f"{cs.token_cosine:.6f}")
    cs = E.context_similarity(t5, *E.BANK_PRESET)          # relative positions: nothing is added
    assert not cs.position_added and "adds no position" in cs.layer0
    assert cs.token_cosine == pytest.approx(float(cs.cosine[0]), abs=1e-5)
