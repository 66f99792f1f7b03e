"""Random-init models of each architecture kind, built offline: the one builder the tests
(through ``tests/conftest.py``'s fixtures) and the benchmarks share.

Each has a tokenizer trained here with the `tokenizers` library, so nothing is fetched.
At their default (tiny) sizes they prove the lab does not depend on the zoo's particular
configs; a benchmark passes config overrides for the size it needs.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

CORPUS = [
    "The teacher taught the students with the book.",
    "I sat on the river bank and watched the water.",
    "I deposited cash at the bank before noon.",
    "Dog bites man. Man bites dog. The cat sat on the mat.",
    "To be, or not to be, that is the question.",
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
    "naïve café — emoji 🙂 and אבג and مرحبا and 漢字 text",
] * 20


def _fast(tok_obj, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok_obj, **special)


def byte_bpe_tokenizer(texts: list[str] | None = None, vocab_size: int = 400):
    """A byte-level BPE (GPT-2 style) trained on ``texts`` (default: the small corpus above)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS if texts is None else texts, trainer)
    return _fast(tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return _fast(tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                 sep_token="[SEP]", mask_token="[MASK]")


def unigram_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return _fast(tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


TOKENIZERS = {"gpt2": byte_bpe_tokenizer, "llama": byte_bpe_tokenizer,
              "bert": wordpiece_tokenizer, "t5": unigram_tokenizer}


def model(kind: str, tok, seed: int = 0, **config):
    """A random-init model of ``kind`` (gpt2, llama, bert, t5) for ``tok``, in eval mode.

    ``config`` overrides the tiny defaults (e.g. ``n_layer=4`` or ``hidden_size=2048``).
    """
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = tf.GPT2Config(**{**dict(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id), **config})
        net = tf.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = tf.LlamaConfig(**{**dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=64, bos_token_id=tok.bos_token_id,
                                       eos_token_id=tok.eos_token_id, tie_word_embeddings=False), **config})
        net = tf.LlamaForCausalLM(cfg)
    elif kind == "bert":
        cfg = tf.BertConfig(**{**dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, max_position_embeddings=64,
                                      pad_token_id=tok.pad_token_id), **config})
        net = tf.BertForMaskedLM(cfg)
    elif kind == "t5":
        cfg = tf.T5Config(**{**dict(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                    num_decoder_layers=2, num_heads=4, pad_token_id=tok.pad_token_id,
                                    eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id),
                             **config})
        net = tf.T5ForConditionalGeneration(cfg)
    else:
        raise ValueError(kind)
    return net.eval()


def build(kind: str, folder: Path, seed: int = 0, *, tokenizer=None, dtype=None, device=None, **config) -> Path:
    """Write a model of ``kind`` (gpt2, llama, bert, t5) and its tokenizer into ``folder``.

    ``tokenizer`` replaces the kind's default one; ``device`` builds the weights there (a
    large model on a GPU), ``dtype`` casts them before saving; ``config`` as in ``model``.
    """
    import torch

    if kind not in TOKENIZERS:
        raise ValueError(kind)
    folder = Path(folder)
    tok = tokenizer if tokenizer is not None else TOKENIZERS[kind]()
    with torch.device(device) if device else contextlib.nullcontext():
        net = model(kind, tok, seed, **config)
    if dtype is not None:
        net = net.to(dtype)
    net.save_pretrained(folder)
    tok.save_pretrained(folder)
    if getattr(net, "generation_config", None) is not None and kind != "bert":
        net.generation_config.save_pretrained(folder)
    return folder
