"""DecodeSession and FillMaskSession against transformers' generate() and forward()."""
import numpy as np
import pytest
import torch

from lab.core import models, sampling
from lab.core.decoding import DecodeSession, FillMaskSession, mask_note
from lab.core.errors import InputError
from lab.core.sampling import SamplingSettings

PROMPT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def gpt2(loaded):
    return loaded("gpt2")


@pytest.fixture(scope="module")
def t5(loaded):
    return loaded("t5")


@pytest.fixture(scope="module")
def bert(loaded):
    return loaded("bert")


def greedy(n, **kw):
    return SamplingSettings(strategy="greedy", max_new_tokens=n, **kw)


def reference(lm, dec, n, **kw):
    """generate()'s new token ids for the same prompt."""
    ids = torch.tensor([dec.encoder_ids if dec.seq2seq else dec.prefix_ids])
    kw.setdefault("eos_token_id", None)
    kw.setdefault("pad_token_id", 0)
    with torch.no_grad():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, **kw)
    return out[0].tolist()[len(dec.prefix_ids):]


@pytest.mark.parametrize("which", ["gpt2", "t5"])
def test_greedy_stepping_equals_generate(which, request):
    lm = request.getfixturevalue(which)
    dec = DecodeSession(lm, PROMPT, greedy(15, stop_at_eos=False), eos_token_ids=[])
    for _ in range(15):
        dec.step()
    assert dec.step() is None and dec.stop_reason() == "max"
    assert dec.generated_ids() == reference(lm, dec, 15, do_sample=False)


@pytest.mark.parametrize("which", ["gpt2", "t5"])
def test_eos_counts_toward_max_new_tokens_and_stops(which, request):
    lm = request.getfixturevalue(which)
    free = DecodeSession(lm, PROMPT, greedy(12, stop_at_eos=False, repetition_penalty=5.0), eos_token_ids=[])
    free.run()
    ids = free.generated_ids()
    eos = next(t for i, t in enumerate(ids) if i >= 2 and t not in ids[:i])    # a token first produced at step >= 3
    k = ids.index(eos) + 1
    dec = DecodeSession(lm, PROMPT, greedy(12, repetition_penalty=5.0), eos_token_ids=[eos])
    dec.run()
    assert dec.generated_ids() == ids[:k] and dec.stop_reason() == "eos"
    assert dec.generated_ids() == reference(lm, dec, 12, do_sample=False, repetition_penalty=5.0, eos_token_id=eos)
    # EOS as the very first generated token: one token, then stop
    first = DecodeSession(lm, PROMPT, greedy(12, repetition_penalty=5.0), eos_token_ids=[ids[0]])
    assert first.run() and first.generated_ids() == [ids[0]] and first.stop_reason() == "eos"
    assert first.step() is None
    assert first.generated_ids() == reference(lm, first, 12, do_sample=False, repetition_penalty=5.0, eos_token_id=ids[0])
    # with stop at EOS off the decode goes on past it
    on = DecodeSession(lm, PROMPT, greedy(12, stop_at_eos=False, repetition_penalty=5.0), eos_token_ids=[ids[0]])
    assert len(on.run()) == 12


SAMPLING = SamplingSettings(strategy="sample", temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.3,
                            max_new_tokens=10, stop_at_eos=False, seed=11)


@pytest.mark.parametrize("which", ["gpt2", "t5"])
def test_processed_distribution_and_draws_equal_generate(which, request):
    lm = request.getfixturevalue(which)
    s = SAMPLING
    dec = DecodeSession(lm, PROMPT, s, eos_token_ids=[])
    dec.run()
    ids = torch.tensor([dec.encoder_ids if dec.seq2seq else dec.prefix_ids])
    torch.manual_seed(s.seed)
    with torch.no_grad():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=True,
                                temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.3, eos_token_id=None,
                                pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    assert dec.generated_ids() == out.sequences[0].tolist()[len(dec.prefix_ids):]
    for node, ref in zip(dec.path(), out.scores):
        view = dec.view(node)
        ours = torch.softmax(ref.float(), -1)[0].numpy()
        assert abs(view.stages[-1].probs - ours).max() < 1e-5
        chosen = next(c for c in view.candidates if c.chosen)
        assert chosen.prob == pytest.approx(float(ours[node.token_id]), abs=1e-6)
        # the replayed multinomial draw lands in the chosen token's slice
        assert view.draw.exact and view.draw.lo <= view.draw.u < view.draw.hi


def _rules_model(request, kind, **options):
    """A fresh copy of a tiny model whose generation config carries ``options``."""
    lm = models.load(str(request.getfixturevalue(f"tiny_{kind}")))
    for k, v in options.items():
        setattr(lm.model.generation_config, k, v)
    return lm


def _generate(lm, dec, **kw):
    ids = torch.tensor([dec.encoder_ids if dec.seq2seq else dec.prefix_ids])
    with torch.no_grad():
        return lm.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0,
                                 output_scores=True, return_dict_in_generate=True, **kw)


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_model_generation_rules_apply_as_generate_applies_them(kind, request):
    """n-gram blocking, minimum new tokens, bad words, suppressed tokens, sequence bias,
    forced tokens and encoder penalties from the model's generation config: greedy
    step-through gives generate()'s tokens, and the rules stage shows what they removed."""
    free_lm = _rules_model(request, kind, max_new_tokens=12)
    free = DecodeSession(free_lm, PROMPT, eos_token_ids=[])
    free.run()
    ids = free.generated_ids()
    c = [x.id for x in free.view(free.path()[0]).candidates]    # distinct, most likely first
    eos = c[0]       # the free decode's first token: min_new_tokens must now hold it back
    rules = dict(no_repeat_ngram_size=2, min_new_tokens=3, bad_words_ids=[[c[1]], [c[2], c[3]]],
                 suppress_tokens=[c[4]], begin_suppress_tokens=[c[5]], sequence_bias=[[[c[6]], 2.0]],
                 eos_token_id=eos, max_new_tokens=12)
    if kind == "t5":
        rules.update(encoder_no_repeat_ngram_size=2, encoder_repetition_penalty=1.5, forced_bos_token_id=c[7])
    else:
        rules.update(forced_eos_token_id=eos)
    lm = _rules_model(request, kind, **rules)
    dec = DecodeSession(lm, PROMPT)
    assert any("no_repeat_ngram_size=2" in n for n in sampling.model_defaults(lm.model).notes)
    dec.run()
    out = _generate(lm, dec)
    assert dec.generated_ids() == out.sequences[0].tolist()[len(dec.prefix_ids):]
    assert dec.generated_ids() != ids
    removed = 0
    for node, ref in zip(dec.path(), out.scores):
        view = dec.view(node)
        names = [st.name for st in view.stages]
        assert names[:3] == ["raw", "penalties", "rules"]
        removed += {st.name: st for st in view.stages}["rules"].removed
        np.testing.assert_allclose(view.stages[-1].probs, torch.softmax(ref.float(), -1)[0].numpy(), atol=1e-6)
    assert removed > 0
    # without the rules the lab would have decoded something else
    dec.rules = sampling.ModelRules(None, eos_ids=[eos], prompt_len=len(dec.prefix_ids), encoder_ids=[])
    assert not dec.rules and not [st for st in sampling.build_chain(dec.settings, dec.rules) if st.name == "rules"]


def test_model_sampling_warpers_apply_as_generate_applies_them(request):
    """typical-p, epsilon and eta cutoffs from the model's generation config."""
    lm = _rules_model(request, "gpt2", do_sample=True, temperature=1.3, top_k=0, typical_p=0.9,
                      epsilon_cutoff=3e-3, eta_cutoff=2e-3, max_new_tokens=10)
    dec = DecodeSession(lm, PROMPT, eos_token_ids=[])
    assert dec.settings.do_sample and dec.settings.seed == 0
    dec.run()
    torch.manual_seed(0)
    out = _generate(lm, dec, eos_token_id=None)
    assert dec.generated_ids() == out.sequences[0].tolist()[len(dec.prefix_ids):]
    for node, ref in zip(dec.path(), out.scores):
        view = dec.view(node)
        assert [st.name for st in view.stages][-3:] == ["typical", "epsilon", "eta"]
        np.testing.assert_allclose(view.stages[-1].probs, torch.softmax(ref.float(), -1)[0].numpy(), atol=1e-6)


def test_same_seed_same_sequence_and_other_seed_differs(gpt2):
    runs = [DecodeSession(gpt2, PROMPT, SAMPLING, eos_token_ids=[]) for _ in range(2)]
    for r in runs:
        r.run()
    assert runs[0].generated_ids() == runs[1].generated_ids()
    other = DecodeSession(gpt2, PROMPT, SAMPLING.with_(seed=12), eos_token_ids=[])
    other.run()
    assert other.generated_ids() != runs[0].generated_ids()


def test_each_step_feeds_one_token_with_the_cache(gpt2, t5):
    seen = []
    h = gpt2.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].shape[1]), with_kwargs=True)
    try:
        dec = DecodeSession(gpt2, PROMPT, greedy(6, stop_at_eos=False), eos_token_ids=[])
        dec.run()
    finally:
        h.remove()
    assert seen == [len(dec.prefix_ids)] + [1] * 5     # prefill, then one new token per step
    enc_calls, dec_lens = [], []
    h1 = t5.model.get_encoder().register_forward_pre_hook(lambda m, a: enc_calls.append(1))
    h2 = t5.model.register_forward_pre_hook(lambda m, a, kw: dec_lens.append(kw["decoder_input_ids"].shape[1]),
                                            with_kwargs=True)
    try:
        d5 = DecodeSession(t5, PROMPT, greedy(6, stop_at_eos=False), eos_token_ids=[])
        d5.run()
    finally:
        h1.remove()
        h2.remove()
    assert len(enc_calls) == 1 and dec_lens == [1] * 6


@pytest.mark.parametrize("which", ["gpt2", "t5"])
def test_back_and_branch_switches_restore_the_cache(which, request):
    lm = request.getfixturevalue(which)
    dec = DecodeSession(lm, PROMPT, greedy(8, stop_at_eos=False, repetition_penalty=3.0), eos_token_ids=[])
    dec.run()
    main_leaf, main_ids = dec.current, dec.generated_ids()
    n_forwards = len(dec.forward_lengths)
    for _ in range(3):
        dec.back()
    assert dec.generated_ids() == main_ids[:5] and len(dec.forward_lengths) == n_forwards   # Back runs nothing
    # branch at step 3: force the second candidate, then continue greedily
    third = dec.path()[2]
    alt = next(c.id for c in dec.view(third).candidates if not c.chosen)
    dec.branch(third.id, alt)
    dec.run()
    branch_ids = dec.generated_ids()
    assert branch_ids[:3] == main_ids[:2] + [alt] and len(branch_ids) == 8
    fresh = DecodeSession(lm, PROMPT, greedy(8, stop_at_eos=False, repetition_penalty=3.0), eos_token_ids=[])
    fresh.step()
    fresh.step()
    fresh.step(force=alt)
    fresh.run()
    assert fresh.generated_ids() == branch_ids
    # switching back is instant; continuing from the old leaf recomputes once, in sync
    dec.goto(main_leaf.id)
    assert dec.generated_ids() == main_ids
    dec.set_settings(dec.settings.with_(max_new_tokens=11))
    before = len(dec.forward_lengths)
    dec.run()
    assert dec.generated_ids() == reference(lm, dec, 11, do_sample=False, repetition_penalty=3.0)
    assert len(dec.forward_lengths) - before == 3
    tree = dec.tree()
    assert tree.tokens == 2 and len(tree.children) == 2     # a shared run of 2 tokens, then two branches
    assert {c.tokens for c in tree.children} == {9, 6} and sum(c.on_path for c in tree.children) == 1
    leaves = dec.leaves()
    assert len(leaves) == 2
    assert dec.cum_logprob(dec.current) < 0


@pytest.mark.parametrize("which", ["gpt2", "t5"])
def test_logits_past_the_budget_are_dropped_and_read_again_exactly(which, request):
    """A long decode keeps at most ``logits_budget`` bytes of raw logits; a dropped step
    shown again costs one forward pass and shows the model's numbers."""
    lm = request.getfixturevalue(which)
    settings = SamplingSettings(strategy="sample", temperature=0.9, top_k=20, seed=3, max_new_tokens=12,
                                stop_at_eos=False)
    full = DecodeSession(lm, PROMPT, settings, eos_token_ids=[])
    full.run()
    capped = DecodeSession(lm, PROMPT, settings, eos_token_ids=[])
    per_step = capped.root.next_logits.numel() * 4
    capped.logits_budget = 3 * per_step
    capped.run()
    assert capped.generated_ids() == full.generated_ids()        # same draws as without the cap
    held = [n for n in capped.nodes.values() if n.next_logits is not None]
    assert len(held) <= 3 and capped.dropped_logits >= 9
    assert capped._held_bytes == sum(n.next_logits.numel() * 4 for n in held)
    # the timeline (computed before the logits went) is the uncapped one
    for a, b in zip(capped.timeline(), full.timeline()):
        assert (a.token_id, a.how) == (b.token_id, b.how)
        assert a.raw_prob == pytest.approx(b.raw_prob, abs=1e-5) and a.entropy_bits == pytest.approx(b.entropy_bits, abs=1e-4)
    # an early step shown again: one forward pass, the same numbers
    early = capped.path()[1]
    assert early.parent.next_logits is None
    before = len(capped.forward_lengths)
    v, ref = capped.view(early), full.view(full.path()[1])
    assert len(capped.forward_lengths) == before + 1
    assert [c.id for c in v.candidates] == [c.id for c in ref.candidates]
    assert [c.raw_prob for c in v.candidates] == pytest.approx([c.raw_prob for c in ref.candidates], abs=1e-5)
    # and a branch from there continues as a fresh decode would
    capped.branch(early.id, ref.candidates[1].id)
    full.branch(full.path()[1].id, ref.candidates[1].id)
    capped.run()
    full.run()
    assert capped.generated_ids() == full.generated_ids()


def test_changing_settings_refilters_the_cached_step_without_the_model(gpt2):
    dec = DecodeSession(gpt2, PROMPT, SAMPLING, eos_token_ids=[])
    node = dec.step()
    n = len(dec.forward_lengths)
    v1 = dec.view(node)
    v2 = dec.view(node, settings=SAMPLING.with_(top_k=3, top_p=1.0))
    assert len(dec.forward_lengths) == n
    assert v2.refiltered and v2.stages[-1].survivors == 3 and v1.stages[-1].survivors != 3
    assert [c.raw_prob for c in v1.candidates] == [c.raw_prob for c in v2.candidates]
    assert len(v1.candidates) >= 20 and any(c.removed for c in v2.candidates)


def test_max_new_tokens_is_clamped_to_the_context_window(gpt2):
    dec = DecodeSession(gpt2, PROMPT, greedy(500), eos_token_ids=[])
    room = gpt2.card.context - len(dec.prefix_ids)
    assert dec.max_new_tokens == room and any("clamped" in n for n in dec.notes)
    with pytest.raises(InputError, match="context window"):
        DecodeSession(gpt2, "word " * 200, greedy(5))


def test_empty_prompt_starts_from_bos_or_is_refused(tiny_gpt2):
    lm = models.load(str(tiny_gpt2))
    dec = DecodeSession(lm, "", greedy(3))
    assert dec.prefix_ids == [lm.tokenizer.bos_token_id] and any("beginning-of-sequence" in n for n in dec.notes)
    lm.tokenizer.bos_token = None
    lm.model.config.bos_token_id = None
    with pytest.raises(InputError, match="empty"):
        DecodeSession(lm, "", greedy(3))


def test_encoder_only_models_are_sent_to_fill_mask(bert):
    with pytest.raises(InputError, match="fills in masks"):
        DecodeSession(bert, "The cat [MASK].")


def test_mask_given_to_a_decoder_gets_a_note(gpt2, t5):
    assert "does not fill in masks" in mask_note(gpt2, "The [MASK] sat.")
    assert "does not fill in masks" in mask_note(t5, "The <mask> sat.")
    dec = DecodeSession(gpt2, "The [MASK] sat.", greedy(2))
    assert any("does not fill in masks" in n for n in dec.notes)
    assert mask_note(gpt2, "The cat sat.") == ""


def test_fill_mask_left_to_right_back_and_most_confident(bert):
    text = "the cat sat on the [MASK] . the [MASK] bites man ."
    fm = FillMaskSession(bert, text, SamplingSettings(strategy="greedy"))
    assert len(fm.positions) == 2 and not fm.finished
    ids = torch.tensor([fm.original_ids])
    with torch.no_grad():
        logits = bert.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
    p0, p1 = fm.positions
    assert fm.step() == p0 and fm.ids[p0] == int(logits[p0].argmax())
    views = fm.views()
    assert views[0].filled_with == fm.ids[p0] and views[1].filled_with is None
    assert len(views[1].view.candidates) >= 20
    assert fm.back() and fm.ids == fm.original_ids and fm.unfilled() == [p0, p1]
    conf = FillMaskSession(bert, text, SamplingSettings(strategy="greedy"), order="most-confident")
    probs = torch.softmax(logits, -1)
    expected = p0 if probs[p0].max() >= probs[p1].max() else p1
    assert conf.step() == expected
    conf.run()
    assert conf.finished and conf.step() is None
    assert fm.forward_lengths == [len(fm.original_ids)] * 2     # each fill re-reads the whole sentence


def test_fill_mask_refuses_what_it_cannot_do(bert, gpt2, tiny_bert):
    with pytest.raises(InputError, match="Put the mask token"):
        FillMaskSession(bert, "no mask here")
    with pytest.raises(InputError, match="encoder-only"):
        FillMaskSession(gpt2, "The [MASK] sat.")
    import transformers

    base = transformers.BertModel.from_pretrained(str(tiny_bert))
    lm = models.LoadedModel(model=base, tokenizer=bert.tokenizer, card=bert.card, device="cpu", dtype="fp32")
    with pytest.raises(InputError, match="without a language-model head"):
        FillMaskSession(lm, "the [MASK] sat.")
    assert "without a language-model head" in mask_note(lm, "the [MASK] sat.")


def test_sampled_fill_is_seeded(bert):
    s = SamplingSettings(strategy="sample", top_k=0, seed=5)
    a = FillMaskSession(bert, "the [MASK] sat on the [MASK] .", s)
    b = FillMaskSession(bert, "the [MASK] sat on the [MASK] .", s)
    a.run()
    b.run()
    assert a.ids == b.ids


@pytest.mark.parametrize("ref,prompt", [("zoo:bard-gpt", "ROMEO: But soft, what light"),
                                        ("zoo:dates-t5", "March 3rd, 2021")])
def test_zoo_models_decode_with_their_own_defaults_exactly_as_generate(ref, prompt):
    """The bundled models, with their generation_config as the starting settings."""
    lm = models.load(ref)
    s = sampling.model_defaults(lm.model).settings.with_(strategy="greedy", max_new_tokens=16)
    dec = DecodeSession(lm, prompt, s)
    dec.run()
    ids = torch.tensor([dec.encoder_ids if dec.seq2seq else dec.prefix_ids])
    with torch.no_grad():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False)
    assert dec.generated_ids() == out[0].tolist()[len(dec.prefix_ids):]
    if dec.seq2seq:   # the date model stops at its end-of-sequence token with a real date
        assert dec.stop_reason() == "eos" and "2021" in dec.text()
