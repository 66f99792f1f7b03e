"""`tvlab <command>`: the lab's command line. The GUI is the default command.

Each command is a module in this package that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; modules are discovered, so a new
command is a new file. User errors (LabError) print one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from typing import Any

import lab  # noqa: F401  (sets offline mode first)
from lab.core.errors import LabError

_CHILD_COMMAND = "_convert-child"   # lab.core.precision.child.CHILD_COMMAND, without importing torch here

# Commands listed first, in this order, in --help; any others follow alphabetically.
_ORDER = ["gui", "info", "selftest", "tokens", "attention", "decode", "convert",
          "memory", "formats", "scaling", "bench"]


def _command_modules():
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    for name in names:
        mod = importlib.import_module(f"{__name__}.{name}")
        if hasattr(mod, "run") and hasattr(mod, "add_arguments"):
            yield mod


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvlab", description="Transformer Visual Lab")
    parser.add_argument("--version", action="version", version=f"tvlab {lab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def print_json(obj: Any) -> None:
    """Print JSON the same way for every command (numpy scalars converted)."""
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser``'s own errors (a bad flag value) one line on stderr and exit 2, like
    every other user error, instead of argparse's usage block."""
    def error(message):
        print(f"tvlab: error: {parser.prog}: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)
    parser.error = error


def fail(message: str, code: int = 2) -> int:
    """One line on stderr, a non-zero exit status."""
    print(f"tvlab: error: {message}".replace("\n", " "), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [_CHILD_COMMAND]:     # hidden: the GUI's conversion process (lab.core.precision.child)
        from lab.core.precision import child

        return child.main()
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except LabError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
