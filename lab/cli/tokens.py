"""tvlab tokens: how a text becomes tokens under a model's tokenizer (and a second one).

Only the tokenizer is read (no weights), so this is quick even for large models.
"""
from __future__ import annotations

import sys

from lab.cli import print_json
from lab.core.errors import InputError

NAME = "tokens"
HELP = "tokenize a text: ids, pieces, exact character spans, special tokens (--compare a second model)"


def add_arguments(p):
    p.add_argument("--model", default="zoo:bard-gpt", help="zoo:NAME, a folder, or a cached hub id")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", help="the text to tokenize")
    src.add_argument("--file", help="read the text from this file (UTF-8); - reads stdin")
    p.add_argument("--compare", metavar="M2", help="a second model whose tokenizer is shown side by side")
    p.add_argument("--json", action="store_true", help="print JSON")


def _read_text(args) -> str:
    if args.text is not None:
        return args.text
    if args.file:
        try:
            if args.file == "-":
                return sys.stdin.read()
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as err:
            raise InputError(f"Cannot read {args.file}: {err.strerror or err}.") from None
        except UnicodeDecodeError:
            raise InputError(f"{args.file} is not UTF-8 text.") from None
    raise InputError("Give the text with --text TEXT (or --file PATH).")


def _print_table(tz) -> None:
    print(f"{tz.model}: {tz.count} tokens, {tz.characters} characters, "
          f"{tz.chars_per_token:.2f} characters per token, {tz.words} words, "
          f"{tz.tokens_per_word:.2f} tokens per word ({tz.info.family})")
    for i in range(tz.count):
        flag = f"  [{tz.role(i) or 'special'}]" if tz.special[i] else ""
        print(f"  {i:>5}  {tz.ids[i]:>7}  {tz.label(i)!s:<20} {tz.starts[i]:>6}-{tz.ends[i]:<6} "
              f"{tz.span_text(i)!r}{flag}")


def run(args) -> int:
    from lab.core import tokens

    text = _read_text(args)
    tok, name = tokens.load_tokenizer(args.model)
    a = tokens.tokenize(tok, text, model=name)
    if not args.compare:
        if args.json:
            print_json(a.to_json())
        else:
            _print_table(a)
        for w in a.warnings:
            print(f"tvlab: warning: {w}", file=sys.stderr)
        return 0
    tok2, name2 = tokens.load_tokenizer(args.compare)
    b = tokens.tokenize(tok2, text, model=name2)
    cmp = tokens.compare(a, b)
    if args.json:
        print_json({"model": a.model, "count": a.count, "tokens": a.to_json()["tokens"],
                    "compare": b.to_json(),
                    "spans": cmp.to_json()["spans"], "differing_spans": cmp.differing})
        return 0
    _print_table(a)
    print()
    _print_table(b)
    print()
    print(f"aligned spans: {len(cmp.spans)}, differing: {cmp.differing}")
    wa = max([len(" ".join(a.label(i) for i in s.a)) for s in cmp.spans] + [len(a.model)])
    print(f"  {'text':<16} {a.model:<{wa}}  |  {b.model}")
    for s in cmp.spans:
        mark = " " if s.same else "*"
        print(f"{mark} {text[s.start:s.end]!r:<16} {' '.join(a.label(i) for i in s.a):<{wa}}  |  "
              f"{' '.join(b.label(i) for i in s.b)}")
    return 0
