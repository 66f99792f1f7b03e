"""Token pieces, ids, character offsets, bytes and special flags; two tokenizers side by side.

Everything here comes from the tokenizer's own call and its offset mapping: the text a
token covers is always ``text[start:end]`` of the input, never a per-token ``decode``
(which turns a character split across tokens into U+FFFD). A byte-level token that holds
only part of a character is labelled with its bytes (``<0xF0><0x9F>``).

No Qt and no torch here: a tokenizer is enough (``load_tokenizer`` reads one without the
weights, for the CLI and the side-by-side comparison).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional

from lab.core.errors import InputError, ModelLoadError

# Readable stand-ins for invisible characters (the "readable" label style).
SPACE_SYMBOL = "␣"
NEWLINE_SYMBOL = "↵"
TAB_SYMBOL = "⇥"
_VISIBLE = {" ": SPACE_SYMBOL, "\n": NEWLINE_SYMBOL, "\t": TAB_SYMBOL, "\r": "␍"}

FAMILY_BYTE_BPE = "byte-level BPE"
FAMILY_WORDPIECE = "WordPiece"
FAMILY_SENTENCEPIECE = "SentencePiece"
FAMILY_OTHER = "other"


def _hex_errors(err: UnicodeDecodeError):
    bad = err.object[err.start:err.end]
    return "".join(f"<0x{b:02X}>" for b in bad), err.end


codecs.register_error("tvlab_hex", _hex_errors)


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the printable stand-in character -> byte
    (transformers' own table, the one its byte-level tokenizers are built with)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def hex_bytes(data: bytes) -> str:
    """Decode UTF-8, writing bytes that are not whole characters as ``<0xE2>``."""
    return data.decode("utf-8", errors="tvlab_hex")


def visible(text: str) -> str:
    """Spaces, newlines and tabs as readable symbols, control characters as ``<U+0007>``."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


# --- what kind of tokenizer -------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’]\w+)*")


@dataclass
class TokenizerInfo:
    family: str                   # byte-level BPE, WordPiece, SentencePiece, other
    model: str                    # the tokenizers model type: BPE, WordPiece, Unigram, ...
    continuation_prefix: str = ""  # "##" for WordPiece
    space_marker: str = ""        # "Ġ" (byte-level) or "▁" (SentencePiece)
    vocab: int = 0
    special_roles: dict[int, str] = field(default_factory=dict)   # id -> BOS, EOS, CLS, ...
    label_cache: dict = field(default_factory=dict, repr=False)    # (piece, readable, ...) -> label

    def describe(self) -> str:
        marks = {FAMILY_BYTE_BPE: "Ġ marks a leading space, Ċ a newline; bytes of split characters show as <0x..>",
                 FAMILY_WORDPIECE: "## marks a piece that continues a word",
                 FAMILY_SENTENCEPIECE: "▁ marks a leading space; <0x..> tokens are byte fallbacks"}
        return f"{self.family} ({self.model}, {self.vocab:,} tokens): {marks.get(self.family, 'pieces as the tokenizer writes them')}"


_info_cache: "weakref.WeakKeyDictionary[Any, TokenizerInfo]" = weakref.WeakKeyDictionary()


def _walk_types(node) -> list[str]:
    """Every "type" in a tokenizer.json component (sequences included)."""
    out = []
    if isinstance(node, dict):
        if "type" in node:
            out.append(node["type"])
        for v in node.values():
            out += _walk_types(v)
    elif isinstance(node, list):
        for v in node:
            out += _walk_types(v)
    return out


def tokenizer_info(tok) -> TokenizerInfo:
    """Family, markers and special-token roles of a tokenizer (cached per tokenizer)."""
    try:
        return _info_cache[tok]
    except (KeyError, TypeError):
        pass
    model_type, family, prefix, marker = "?", FAMILY_OTHER, "", ""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        try:
            spec = json.loads(backend.to_str())
        except Exception:
            spec = {}
        model = spec.get("model") or {}
        model_type = model.get("type", "?")
        types = set(_walk_types(spec.get("pre_tokenizer"))) | set(_walk_types(spec.get("decoder")))
        if "ByteLevel" in types:
            family, marker = FAMILY_BYTE_BPE, "Ġ"
        elif model_type == "WordPiece" or "WordPiece" in types:
            family, prefix = FAMILY_WORDPIECE, model.get("continuing_subword_prefix") or "##"
        elif "Metaspace" in types or model_type == "Unigram":
            family, marker = FAMILY_SENTENCEPIECE, "▁"
    roles: dict[int, str] = {}
    for attr, role in (("pad_token_id", "PAD"), ("unk_token_id", "UNK"), ("mask_token_id", "MASK"),
                       ("sep_token_id", "SEP"), ("cls_token_id", "CLS"), ("eos_token_id", "EOS"),
                       ("bos_token_id", "BOS")):
        i = getattr(tok, attr, None)
        if isinstance(i, int):
            roles[i] = role if i not in roles else f"{role}/{roles[i]}"
    for i in getattr(tok, "all_special_ids", []) or []:
        roles.setdefault(int(i), "special")
    info = TokenizerInfo(family=family, model=model_type, continuation_prefix=prefix, space_marker=marker,
                         vocab=len(tok), special_roles=roles)
    try:
        _info_cache[tok] = info
    except TypeError:
        pass
    return info


# --- one tokenization ----------------------------------------------------------------------

@dataclass
class Tokenization:
    """The text as the model sees it; columns, one entry per token (special tokens included)."""

    text: str
    ids: list[int]
    pieces: list[str]                    # the tokenizer's own pieces (convert_ids_to_tokens)
    starts: list[int]                    # character offsets into ``text`` (Python str indices)
    ends: list[int]
    special: list[bool]                  # added by the tokenizer (BOS, [CLS], ...) or a special token
    info: TokenizerInfo
    model: str = ""
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def count(self) -> int:
        return len(self.ids)

    def span_text(self, i: int) -> str:
        """The exact slice of the input token ``i`` covers ("" for added special tokens)."""
        return self.text[self.starts[i]:self.ends[i]]

    def role(self, i: int) -> str:
        """BOS, EOS, CLS, SEP, PAD, UNK, MASK, special, or "" for ordinary tokens."""
        r = self.info.special_roles.get(self.ids[i], "")
        return r if (self.special[i] or r == "UNK") else ""

    def byte_values(self, i: int) -> Optional[bytes]:
        """The bytes a token stands for, when the tokenizer works on bytes (else None)."""
        piece = self.pieces[i]
        if self.special[i]:
            return None
        if self.info.family == FAMILY_BYTE_BPE:
            dec = byte_decoder()
            if all(c in dec for c in piece):
                return bytes(dec[c] for c in piece)
            return None
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                return None
        return None

    def split_character(self, i: int) -> bool:
        """True when token ``i`` holds only part of a character (its bytes are not whole)."""
        b = self.byte_values(i)
        if b is None:
            return False
        try:
            b.decode("utf-8")
            return False
        except UnicodeDecodeError:
            return True

    def label(self, i: int, readable: bool = False) -> str:
        """What a chip shows: the piece with its markers (Ġ, ▁, ##), or readable symbols.

        Special tokens show their piece; bytes that are not whole characters show as
        ``<0xE2>``; readable mode shows spaces as ␣ and newlines as ↵ instead of Ġ/▁/Ċ.
        """
        piece = self.pieces[i]
        space_before = (self.info.family == FAMILY_WORDPIECE and readable and self.starts[i] > 0
                        and self.text[self.starts[i] - 1].isspace())
        key = (piece, readable, self.special[i], space_before)
        cache = self.info.label_cache
        out = cache.get(key)
        if out is None:
            out = self._make_label(i, readable, space_before)
            if len(cache) < 500_000:
                cache[key] = out
        return out

    def labels(self, readable: bool = False, limit: Optional[int] = None) -> list[str]:
        """``label(i, readable)`` for the first ``limit`` tokens, fast (one cache lookup each)."""
        n = self.count if limit is None else min(limit, self.count)
        if readable and self.info.family == FAMILY_WORDPIECE:
            return [self.label(i, True) for i in range(n)]
        get = self.info.label_cache.get
        pieces, special = self.pieces, self.special
        out = []
        for i in range(n):
            lab = get((pieces[i], readable, special[i], False))
            out.append(lab if lab is not None else self.label(i, readable))
        return out

    def _make_label(self, i: int, readable: bool, space_before: bool) -> str:
        piece = self.pieces[i]
        if self.special[i] or piece is None:
            out = piece or f"<id {self.ids[i]}>"
        elif self.info.family == FAMILY_BYTE_BPE:
            b = self.byte_values(i)
            if b is None:
                out = piece
            else:
                decoded = hex_bytes(b)
                if readable:
                    out = visible(decoded)
                elif "<0x" in decoded:
                    out = decoded.replace(" ", "Ġ").replace("\n", "Ċ")
                else:
                    out = piece
        elif self.info.family == FAMILY_SENTENCEPIECE:
            out = visible(piece.replace("▁", " ")) if readable else visible(piece)
        elif self.info.family == FAMILY_WORDPIECE:
            pre = self.info.continuation_prefix
            out = piece[len(pre):] if readable and pre and piece.startswith(pre) and len(piece) > len(pre) else piece
            out = (SPACE_SYMBOL if space_before else "") + visible(out)
        else:
            out = visible(piece)
        return out or "∅"

    def token_dict(self, i: int) -> dict:
        return {"id": int(self.ids[i]), "piece": self.pieces[i], "text": self.span_text(i),
                "start": int(self.starts[i]), "end": int(self.ends[i]), "special": bool(self.special[i])}

    def to_json(self) -> dict:
        """``{"model", "count", "tokens": [{"id", "piece", "text", "start", "end", "special"}]}``."""
        return {"model": self.model, "count": self.count, "words": self.words,
                "tokens_per_word": self.tokens_per_word, "tokens": [self.token_dict(i) for i in range(self.count)]}

    @property
    def words(self) -> int:
        """Words of the text: runs of letters or digits (with inner apostrophes); punctuation is no word."""
        return len(_WORD.findall(self.text))

    @property
    def tokens_per_word(self) -> float:
        """The text's price: its tokens (punctuation included, added special tokens not) per word."""
        return sum(1 for s in self.special if not s) / self.words if self.words else 0.0

    @property
    def characters(self) -> int:
        return len(self.text)

    @property
    def chars_per_token(self) -> float:
        n = sum(1 for s in self.special if not s)
        return self.characters / n if n else 0.0

    def token_at(self, char: int) -> int:
        """Index of the first non-special token covering character ``char`` (-1 if none)."""
        for i in range(self.count):
            if not self.special[i] and self.starts[i] <= char < self.ends[i]:
                return i
        return -1

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "id", "piece", "text", "start", "end", "special", "role", "label"])
        for i in range(self.count):
            w.writerow([i, self.ids[i], self.pieces[i], self.span_text(i), self.starts[i], self.ends[i],
                        int(self.special[i]), self.role(i), self.label(i)])
        return buf.getvalue()


def tokenize(tok, text: str, *, model: str = "", add_special_tokens: bool = True) -> Tokenization:
    """Run the tokenizer once with its offset mapping; see the module docstring."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError("The text to tokenize must be a string.")
    info = tokenizer_info(tok)
    warnings: list[str] = []
    if getattr(tok, "is_fast", False):
        enc = tok(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                  return_special_tokens_mask=True, return_attention_mask=False, verbose=False)
        encoding = enc.encodings[0] if getattr(enc, "encodings", None) else None
        ids = enc["input_ids"]
        offsets = enc["offset_mapping"]
        mask = enc.get("special_tokens_mask") or [0] * len(ids)
        pieces = encoding.tokens if encoding is not None else None
        if pieces is None or len(pieces) != len(ids):
            pieces = tok.convert_ids_to_tokens(ids)
        starts = [o[0] for o in offsets]
        ends = [o[1] for o in offsets]
    else:
        # Slow (Python) tokenizers have no offset mapping: no spans rather than wrong ones.
        enc = tok(text, add_special_tokens=add_special_tokens, return_special_tokens_mask=True,
                  return_attention_mask=False)
        ids = [int(i) for i in enc["input_ids"]]
        pieces = tok.convert_ids_to_tokens(ids)
        mask = enc.get("special_tokens_mask", [0] * len(ids))
        starts = [0] * len(ids)
        ends = [0] * len(ids)
        warnings.append("This tokenizer has no fast version, so it gives no character offsets; "
                        "spans are not shown.")
    unk = getattr(tok, "unk_token_id", None)
    roles = info.special_roles
    marked = {i for i, r in roles.items() if i != unk or r != "UNK"}   # an unknown word is text
    special = [m == 1 or i in marked for i, m in zip(ids, mask)]
    return Tokenization(text=text, ids=ids, pieces=pieces, starts=starts, ends=ends, special=special,
                        info=info, model=model, warnings=warnings)


# --- loading a tokenizer without the weights ------------------------------------------------

def load_tokenizer(ref: str):
    """``(tokenizer, name)`` for a model reference, without loading its weights.

    Same rules as ``models.load``: offline, and never code from the model folder.
    """
    from lab.core import models

    folder, _source = models.resolve(ref)
    cfg = models.read_config(folder)
    models._refuse_remote_code(folder, cfg)
    import transformers

    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                         trust_remote_code=False)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ModelLoadError(f"Could not load the tokenizer of {folder.name}: {first}") from None
    name = ref[4:] if ref.startswith("zoo:") else folder.name
    return tok, name


# --- two tokenizers side by side ----------------------------------------------------------

@dataclass
class AlignedSpan:
    """A stretch of text both tokenizers cut at the same boundaries on either side."""

    start: int
    end: int
    a: list[int]           # token indices in the first tokenization
    b: list[int]           # token indices in the second
    same: bool             # one token each, covering the same text


@dataclass
class Comparison:
    a: Tokenization
    b: Tokenization
    spans: list[AlignedSpan]

    @property
    def differing(self) -> int:
        return sum(1 for s in self.spans if not s.same)

    def to_json(self) -> dict:
        return {"a": self.a.to_json(), "b": self.b.to_json(),
                "spans": [{"start": s.start, "end": s.end, "text": self.a.text[s.start:s.end],
                           "a": s.a, "b": s.b, "same": s.same} for s in self.spans],
                "differing_spans": self.differing}

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["start", "end", "text", f"{self.a.model or 'a'} pieces", f"{self.a.model or 'a'} ids",
                    f"{self.b.model or 'b'} pieces", f"{self.b.model or 'b'} ids", "same"])
        for s in self.spans:
            w.writerow([s.start, s.end, self.a.text[s.start:s.end],
                        " ".join(self.a.label(i) for i in s.a), " ".join(str(self.a.ids[i]) for i in s.a),
                        " ".join(self.b.label(i) for i in s.b), " ".join(str(self.b.ids[i]) for i in s.b),
                        int(s.same)])
        return buf.getvalue()


def _skip_space(text: str) -> list[int]:
    """nxt[p] = the first position >= p that is not whitespace (len(text) at the end)."""
    n = len(text)
    nxt = [n] * (n + 1)
    for p in range(n - 1, -1, -1):
        nxt[p] = nxt[p + 1] if text[p].isspace() else p
    return nxt


def align(a: Tokenization, b: Tokenization) -> list[AlignedSpan]:
    """Group the tokens of two tokenizations of one text into spans with common boundaries.

    Boundaries are compared after skipping whitespace, since one tokenizer may give a
    space to the token before it, another to the token after, and WordPiece to none.
    Added special tokens (no text) form spans of their own.
    """
    if a.text != b.text:
        raise InputError("Both tokenizations must be of the same text.")
    nxt = _skip_space(a.text)
    n = len(a.text)

    def norm(p: int) -> int:
        return nxt[min(max(p, 0), n)]

    ia = [i for i in range(a.count) if not (a.special[i] and a.starts[i] == a.ends[i])]
    ib = [i for i in range(b.count) if not (b.special[i] and b.starts[i] == b.ends[i])]
    sa, sb = set(ia), set(ib)
    head_a = [i for i in range(a.count) if i not in sa and (not ia or i < ia[0])]
    head_b = [i for i in range(b.count) if i not in sb and (not ib or i < ib[0])]
    spans: list[AlignedSpan] = []
    if head_a or head_b:
        spans.append(AlignedSpan(0, 0, head_a, head_b, False))
    p = q = 0
    while p < len(ia) or q < len(ib):
        ga: list[int] = []
        gb: list[int] = []
        ea = eb = -1
        if p >= len(ia) or q >= len(ib):   # one side has run out: the rest is one span
            ga, gb = ia[p:], ib[q:]
            p, q = len(ia), len(ib)
            spans.append(_span(a, b, ga, gb, norm))
            break
        while True:
            if ga and gb and norm(ea) == norm(eb):
                break
            want_a = not ga or (gb and norm(ea) < norm(eb))
            if want_a and p < len(ia):
                ga.append(ia[p]); ea = max(ea, a.ends[ia[p]]); p += 1
            elif q < len(ib) and (not want_a or p >= len(ia)):
                gb.append(ib[q]); eb = max(eb, b.ends[ib[q]]); q += 1
            elif p < len(ia):
                ga.append(ia[p]); ea = max(ea, a.ends[ia[p]]); p += 1
            else:
                break
        # The second half of a split character ends where the first did: keep them together.
        while p < len(ia) and ga and a.ends[ia[p]] <= ea:
            ga.append(ia[p]); p += 1
        while q < len(ib) and gb and b.ends[ib[q]] <= eb:
            gb.append(ib[q]); q += 1
        spans.append(_span(a, b, ga, gb, norm))
    # Added special tokens after the first text token (EOS, [SEP]) come last.
    tail_a = [i for i in range(a.count) if i not in sa and i not in head_a]
    tail_b = [i for i in range(b.count) if i not in sb and i not in head_b]
    if tail_a or tail_b:
        spans.append(AlignedSpan(n, n, tail_a, tail_b, False))
    return spans


def _span(a: Tokenization, b: Tokenization, ga: list[int], gb: list[int], norm) -> AlignedSpan:
    starts = [a.starts[i] for i in ga] + [b.starts[i] for i in gb]
    start = min(starts) if starts else 0
    end = max([a.ends[i] for i in ga] + [b.ends[i] for i in gb], default=start)
    same = (len(ga) == 1 and len(gb) == 1
            and norm(a.starts[ga[0]]) == norm(b.starts[gb[0]]) and norm(a.ends[ga[0]]) == norm(b.ends[gb[0]]))
    return AlignedSpan(start, end, list(ga), list(gb), bool(same))


def compare(a: Tokenization, b: Tokenization) -> Comparison:
    return Comparison(a=a, b=b, spans=align(a, b))


__all__ = ["Tokenization", "TokenizerInfo", "tokenize", "tokenizer_info", "load_tokenizer",
           "align", "compare", "Comparison", "AlignedSpan", "hex_bytes", "visible"]
