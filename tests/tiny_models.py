"""Tiny random-init models of each architecture kind, built offline for the tests.

Each has a tokenizer trained here with the `tokenizers` library, so nothing is fetched.
They prove the lab does not depend on the zoo's particular configs.
"""
from __future__ import annotations

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


def byte_bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
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


def build(kind: str, folder: Path, seed: int = 0) -> Path:
    """Write a tiny model of ``kind`` (gpt2, llama, bert, t5) into ``folder``."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    folder = Path(folder)
    if kind in ("gpt2", "llama"):
        tok = byte_bpe_tokenizer()
        if kind == "gpt2":
            cfg = tf.GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
            model = tf.GPT2LMHeadModel(cfg)
        else:
            cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=64, bos_token_id=tok.bos_token_id,
                                 eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
            model = tf.LlamaForCausalLM(cfg)
    elif kind == "bert":
        tok = wordpiece_tokenizer()
        cfg = tf.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
        model = tf.BertForMaskedLM(cfg)
    elif kind == "t5":
        tok = unigram_tokenizer()
        cfg = tf.T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                          num_heads=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                          decoder_start_token_id=tok.pad_token_id)
        model = tf.T5ForConditionalGeneration(cfg)
    else:
        raise ValueError(kind)
    model.eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None and kind != "bert":
        model.generation_config.save_pretrained(folder)
    return folder
