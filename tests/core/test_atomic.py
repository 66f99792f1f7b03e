"""lab.core.atomic: files and folders appear whole or not at all."""
import os

import pytest

from lab.core import atomic


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic.write_text(path, "one")
    atomic.write_text(path, "two")
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert path.read_text() == "two" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert _names(tmp_path) == ["a.txt", "b.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask    # not mkstemp's private 0600


def test_old_file_survives_an_exception_mid_write(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(path) as tmp:
            tmp.write_text("half of the n")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["data.csv"]


def test_missing_folder_is_an_os_error(tmp_path):
    with pytest.raises(OSError):
        atomic.write_text(tmp_path / "nope" / "a.txt", "x")
    assert _names(tmp_path) == []


def test_building_folder_publishes_or_leaves_nothing(tmp_path):
    final = tmp_path / "out" / "export"
    with pytest.raises(RuntimeError):
        with atomic.building_folder(final) as tmp:
            (tmp / "a.txt").write_text("a")
            raise RuntimeError
    assert not final.exists() and _names(tmp_path / "out") == []
    with atomic.building_folder(final) as tmp:
        (tmp / "a.txt").write_text("a")
    assert _names(final) == ["a.txt"] and _names(tmp_path / "out") == ["export"]


def test_publish_swaps_a_full_folder(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.bin").write_text("old")
    tmp = atomic.temp_folder(final)
    (tmp / "new.bin").write_text("new")
    atomic.publish_folder(tmp, final)
    assert _names(final) == ["new.bin"] and _names(tmp_path) == ["model"]


def test_publish_swap_puts_the_old_folder_back_when_the_rename_fails(tmp_path, monkeypatch):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.bin").write_text("old")
    tmp = atomic.temp_folder(final)
    real = os.rename

    def rename(src, dst):
        if str(src) == str(tmp):
            raise OSError("no")
        real(src, dst)
    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError):
        atomic.publish_folder(tmp, final)
    assert (final / "old.bin").read_text() == "old"


def test_publish_merge_keeps_other_files_and_drops_stale_ones(tmp_path):
    final = tmp_path / "onnx"
    final.mkdir()
    for name in ("model-int4.onnx", "model-fp32.onnx", "notes.txt"):
        (final / name).write_text("old")
    tmp = atomic.temp_folder(final)
    (tmp / "model-fp32.onnx").write_text("new")
    (tmp / "report.json").write_text("{}")
    atomic.publish_folder(tmp, final, merge=True, stale=lambda n: n.startswith("model-"), last="report.json")
    assert _names(final) == ["model-fp32.onnx", "notes.txt", "report.json"]
    assert (final / "model-fp32.onnx").read_text() == "new" and not tmp.exists()
