"""Write files and folders whole: a reader sees the old version or the new one, never half.

Everything is written under a temporary name in the target's own folder (same file
system, so the final step is a rename) and renamed into place only when complete; on
an error the temporary file or folder is removed and the target is left as it was.
Errors are the OS's (OSError): callers turn them into messages about their own task.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import (setting it to read it is not thread-safe).
_UMASK = _read_umask()


@contextlib.contextmanager
def replacing(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The temporary file exists (empty) when the body starts; the body writes it by name.
    It gets the permissions a new file would (``mkstemp`` makes it private). An
    exception in the body removes it and leaves ``path`` untouched.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str, encoding: str = "utf-8") -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(text.encode(encoding))   # no newline translation


def temp_folder(final) -> Path:
    """A new empty folder next to ``final`` (creating its parents), readable as a new folder
    would be: fill it, then ``publish_folder`` it."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    return tmp


def publish_folder(tmp, final, *, merge: bool = False, stale: Optional[Callable[[str], bool]] = None,
                   last: Optional[str] = None) -> None:
    """Move the finished folder ``tmp`` to ``final``.

    A missing or empty ``final`` is replaced by one rename. Otherwise, by default, the
    old folder is swapped out (renamed aside, the new one renamed in, the old one
    deleted; put back if the second rename fails). With ``merge`` the files of ``tmp``
    replace their namesakes inside ``final`` one by one (``last`` moved at the end, so
    its presence says the rest is there), after removing the files of ``final`` that
    ``stale(name)`` marks as earlier results and ``tmp`` does not replace; other files
    in ``final`` stay.
    """
    tmp, final = Path(tmp), Path(final)
    if not final.exists():
        os.rename(tmp, final)
        return
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
        os.rename(tmp, final)
        return
    if merge:
        new = {p.name for p in tmp.iterdir()}
        for old in final.iterdir():
            if stale is not None and stale(old.name) and old.name not in new and old.is_file():
                old.unlink()
        for name in sorted(new, key=lambda n: (n == last, n)):
            os.replace(tmp / name, final / name)
        tmp.rmdir()
        return
    aside = final.parent / f".{final.name}.old-{os.getpid()}"
    os.rename(final, aside)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def building_folder(final, **publish) -> Iterator[Path]:
    """Yield a ``temp_folder`` for ``final``; published (``publish_folder(**publish)``) when
    the body succeeds, removed either way."""
    tmp = temp_folder(final)
    try:
        yield tmp
        publish_folder(tmp, final, **publish)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
