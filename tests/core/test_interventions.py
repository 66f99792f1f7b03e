"""Ablation, the head sweep and activation patching: exact against weight edits and
hand-written hooks, on every supported architecture (tiny random models)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from lab.bench import tiny_models
from lab.core import interventions as iv
from lab.core import models
from lab.core.errors import InputError, LabError
from lab.core.interventions.hooks import Edit, forward, prepare

TEXT = "The cat sat on the mat."
EXTRA = ("qwen2", "neox", "roberta", "bart", "bare-bert")


def _extra_model(kind: str, folder: Path) -> Path:
    """Tiny configs the shared fixtures lack, saved with a tokenizer from tiny_models."""
    import transformers as tf

    torch.manual_seed(0)
    if kind == "bart":
        tok = tiny_models.byte_bpe_tokenizer()
        tok.add_special_tokens({"pad_token": "<pad>", "mask_token": "<mask>"})
        cfg = tf.BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                            decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            decoder_start_token_id=tok.eos_token_id, forced_eos_token_id=None)
        net = tf.BartForConditionalGeneration(cfg)
    elif kind in ("roberta", "bare-bert"):
        tok = tiny_models.wordpiece_tokenizer()
        common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=70, pad_token_id=tok.pad_token_id)
        net = (tf.RobertaForMaskedLM(tf.RobertaConfig(**common)) if kind == "roberta"
               else tf.BertModel(tf.BertConfig(**common)))
    else:
        tok = tiny_models.byte_bpe_tokenizer()
        if kind == "qwen2":
            net = tf.Qwen2ForCausalLM(tf.Qwen2Config(
                vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                tie_word_embeddings=False))
        else:
            net = tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(
                vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=64))
    net.eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def any_model(loaded, tmp_path_factory):
    cache = {}

    def get(kind):
        if kind in EXTRA:
            if kind not in cache:
                cache[kind] = models.load(str(_extra_model(kind, tmp_path_factory.mktemp(kind))))
            return cache[kind]
        return loaded(kind)

    return get


ALL = ("gpt2", "llama", "qwen2", "neox", "bert", "roberta", "t5", "bart")


def _text(lm):
    if lm.kind == "encoder-only" and lm.tokenizer.mask_token:
        return f"The cat sat on the {lm.tokenizer.mask_token}."
    return TEXT


def _weight_zeroed(lm, stack, layer, head):
    """A copy of the model with the head's input columns of the output projection zeroed."""
    twin = copy.copy(lm)
    twin.model = copy.deepcopy(lm.model)
    twin.model.__dict__.pop("_tvlab_sites", None)
    st = iv.stack(twin, stack)
    proj = st.attn_out[layer]
    cols = slice(head * st.head_dim, (head + 1) * st.head_dim)
    with torch.no_grad():
        if st.conv1d:
            proj.weight[cols, :] = 0
        else:
            proj.weight[:, cols] = 0
    return twin


@pytest.mark.parametrize("kind", ALL)
def test_hook_ablation_equals_zeroed_weight_columns(any_model, kind):
    lm = any_model(kind)
    prep = prepare(lm, _text(lm))
    for stack, st in iv.stacks(lm).items():
        layer, head = st.layers - 1, st.heads - 1
        hooked = forward(lm, prep, [[Edit("head", stack, layer, head)]], full=True)[0]
        twin = _weight_zeroed(lm, stack, layer, head)
        ref = forward(twin, prep, [[]], full=True)[0]
        plain = forward(lm, prep, [[]], full=True)[0]
        assert torch.allclose(hooked, ref, atol=1e-5), (kind, stack)
        assert not torch.allclose(hooked, plain, atol=1e-6), (kind, stack, "the ablation changed nothing")


@pytest.mark.parametrize("kind", ALL)
def test_empty_plan_is_bit_identical_and_batched_sweep_matches_one_at_a_time(any_model, kind):
    lm = any_model(kind)
    prep = prepare(lm, _text(lm))
    with torch.inference_mode():
        direct = lm.model(**prep.inputs, return_dict=True, use_cache=False).logits
    assert torch.equal(forward(lm, prep, [[]], full=True), direct)
    res = iv.sweep(lm, _text(lm), chunk=3)
    base = forward(lm, prep, [[]])[0]
    for stack, m in res.maps.items():
        st = iv.stack(lm, stack)
        assert m.shape == (st.layers, st.heads)
        for layer in range(st.layers):
            for head in range(st.heads):
                one = forward(lm, prep, [[Edit("head", stack, layer, head)]])[0]
                assert m[layer, head] == pytest.approx(float(one[res.target.id] - base[res.target.id]), abs=1e-5)


def test_mean_ablation_replaces_the_slice_by_its_mean_over_positions(loaded):
    lm = loaded("gpt2")
    prep = prepare(lm, TEXT)
    st = iv.stack(lm, "self")
    cols = slice(st.head_dim, 2 * st.head_dim)

    def hook(module, args):
        x = args[0].clone()
        x[..., cols] = args[0][..., cols].mean(dim=1, keepdim=True)
        return (x,)

    h = st.attn_out[1].register_forward_pre_hook(hook)
    try:
        ref = forward(lm, prep, [[]], full=True)
    finally:
        h.remove()
    got = forward(lm, prep, [[Edit("head", "self", 1, 1)]], kind="mean", full=True)
    assert torch.allclose(got, ref, atol=1e-6)


def test_ablate_reports_topk_kl_and_target(loaded):
    lm = loaded("gpt2")
    res = iv.ablate(lm, TEXT, heads=iv.parse_heads(lm, "0.1,1.2"), mlp=iv.parse_blocks(lm, "1", "mlp"))
    assert res.target.id == res.top[0].id                      # default target: the top-1
    assert res.kl > 0 and len(res.top) == 10
    prep = prepare(lm, TEXT)
    plan = [Edit("head", "self", 0, 1), Edit("head", "self", 1, 2), Edit("mlp", "self", 1)]
    after = forward(lm, prep, [plan])[0]
    assert res.logp_after == pytest.approx(float(after[res.target.id]), abs=1e-6)
    assert res.to_dict()["delta_logp"] == pytest.approx(res.logp_after - res.logp_before)


def test_attention_block_ablation_zeroes_the_projection_output(loaded):
    lm = loaded("llama")
    prep = prepare(lm, TEXT)
    st = iv.stack(lm, None)
    h = st.attn_out[0].register_forward_hook(lambda m, a, out: torch.zeros_like(out))
    try:
        ref = forward(lm, prep, [[]], full=True)
    finally:
        h.remove()
    assert torch.equal(forward(lm, prep, [[Edit("attn", "self", 0)]], full=True), ref)


def test_bare_encoder_reports_the_embedding_cosine(any_model):
    lm = any_model("bare-bert")
    res = iv.ablate(lm, TEXT, heads=[("self", 0, 1)])
    assert res.readout == "embedding" and res.target is None
    assert 0.0 < res.cosine_mean < 1.0
    sw = iv.sweep(lm, TEXT)
    assert sw.maps["self"].shape == (2, 4) and (sw.maps["self"] > 0).all()


@pytest.mark.parametrize("site", iv.SITES)
@pytest.mark.parametrize("kind", ("gpt2", "llama", "neox", "bert", "t5", "bart"))
def test_patching_exactness(any_model, kind, site):
    lm = any_model(kind)
    clean, corrupt = _text(lm), _text(lm).replace("cat", "mat")
    dec = [lm.model.config.decoder_start_token_id] if lm.kind == "encoder-decoder" else None
    pc, px = prepare(lm, clean, decoder_ids=dec), prepare(lm, corrupt, decoder_ids=dec)
    assert pc.length == px.length
    stack = iv.stack(lm, None).name
    cache = iv.record(lm, pc, stack, site)
    clean_logits = forward(lm, pc, [[]], full=True)
    corrupt_logits = forward(lm, px, [[]], full=True)
    # nothing patched: the corrupted logits
    assert torch.equal(forward(lm, px, [[]], cache=cache, full=True), corrupt_logits)
    if site == "resid":    # every position of the residual stream entering layer 0: the clean logits
        every = [Edit("patch", stack, 0, site="resid", position=p) for p in range(px.length)]
        assert torch.allclose(forward(lm, px, [every], cache=cache, full=True), clean_logits, atol=1e-6)
    # one patch equals a hand-written hook
    layer, pos = 1, 2
    mod = iv.stack(lm, stack).module(site, layer)
    value = cache[(stack, site, layer)][pos]
    if site == "resid":
        def pre(m, args, kwargs):
            h = (args[0] if args else kwargs["hidden_states"]).clone()
            h[0, pos] = value
            return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
        handle = mod.register_forward_pre_hook(pre, with_kwargs=True)
    else:
        def post(m, args, out):
            out = out.clone()
            out[0, pos] = value
            return out
        handle = mod.register_forward_hook(post)
    try:
        ref = forward(lm, px, [[]], full=True)
    finally:
        handle.remove()
    got = forward(lm, px, [[Edit("patch", stack, layer, site=site, position=pos)]], cache=cache, full=True)
    assert torch.equal(got, ref)


def test_patch_map_ends_and_normalisation(loaded):
    lm = loaded("gpt2")
    res = iv.patch(lm, "The cat sat on the mat.", "The dog sat on the mat.", " the", " cat", chunk=5)
    assert res.map.shape == (2, len(res.clean_tokens))
    diff = [i for i, (a, b) in enumerate(zip(res.clean_tokens, res.corrupt_tokens)) if a != b]
    assert diff == [1]
    # entering layer 0, only the token that differs matters: patching it restores the clean run
    # exactly (1), patching any other position changes nothing (0)
    assert res.map[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(np.delete(res.map[0], 1), 0.0, atol=1e-5)
    # positions before the change are the same in both runs at every layer of a causal model
    assert np.allclose(res.map[:, 0], 0.0, atol=1e-5)
    assert res.to_dict()["site_label"]


def test_bad_input_is_one_clear_message(any_model, loaded):
    lm = loaded("gpt2")
    with pytest.raises(InputError, match="out of range"):
        iv.parse_heads(lm, "0.9")
    with pytest.raises(InputError, match="out of range"):
        iv.parse_heads(lm, "7.0")
    with pytest.raises(InputError, match="LAYER.HEAD"):
        iv.parse_heads(lm, "three")
    with pytest.raises(InputError, match="Nothing is selected"):
        iv.ablate(lm, TEXT)
    with pytest.raises(InputError, match="zero or mean"):
        iv.ablate(lm, TEXT, heads=[("self", 0, 0)], kind="half")
    res = iv.ablate(lm, TEXT, heads=[("self", 0, 0)], target="mat cat")
    assert res.target.piece == lm.tokenizer.convert_ids_to_tokens(lm.tokenizer("mat cat")["input_ids"])[0]
    assert any("first piece" in n for n in res.notes)
    with pytest.raises(InputError, match=r"7 tokens and the corrupted one \d+.*align"):
        iv.patch(lm, "The cat sat on the mat.", "A cat sat on a big old mat.", " the", " cat")
    res = iv.patch(lm, "The cat sat on the mat.", "The big dog sat on the mat.", " the", " cat", align=True)
    assert res.map.shape[1] == min(len(res.clean_tokens), len(res.corrupt_tokens))
    assert any("Aligned on the shorter" in n for n in res.notes)
    with pytest.raises(InputError, match="same token"):
        iv.patch(lm, TEXT, TEXT.replace("cat", "dog"), " the", " the")
    with pytest.raises(InputError, match="Unknown site"):
        iv.patch(lm, TEXT, TEXT, " a", " b", site="everything")
    t5 = any_model("t5")
    with pytest.raises(InputError, match="no MLP"):
        iv.parse_blocks(t5, "cross:0", "mlp")


def test_unknown_architecture_is_named_never_guessed(loaded):
    import transformers as tf

    net = tf.GPTJForCausalLM(tf.GPTJConfig(vocab_size=50, n_embd=32, n_layer=1, n_head=4, n_positions=32,
                                           rotary_dim=4)).eval()
    lm = copy.copy(loaded("gpt2"))
    lm.model = net
    with pytest.raises(LabError, match="'gptj'.*not support|not support.*'gptj'"):
        iv.stacks(lm)
