"""`tvlab info` and `tvlab --help` end to end; bad input is one line and a non-zero exit."""
import json

import pytest


def test_info_json_for_each_kind(tvlab, tiny_model_dir):
    for kind, expected in (("gpt2", "decoder-only"), ("bert", "encoder-only"), ("t5", "encoder-decoder")):
        proc = tvlab("info", "--model", tiny_model_dir(kind), "--json")
        assert proc.returncode == 0, proc.stderr
        card = json.loads(proc.stdout)
        assert card["kind"] == expected
        assert card["params"] > 0 and card["layers"] == 2 and card["heads"] == 4


def test_info_human_readable(tvlab, tiny_gpt2):
    proc = tvlab("info", "--model", tiny_gpt2)
    assert proc.returncode == 0 and "decoder-only" in proc.stdout and "params" in proc.stdout


@pytest.mark.parametrize("ref,message", [
    ("/nonexistent/folder", "does not exist"),
    ("zoo:no-such-model", "No bundled model"),
    ("someone/uncached-model", "local Hugging Face cache"),
])
def test_info_bad_references(tvlab, ref, message, one_line_error):
    assert message in one_line_error(tvlab("info", "--model", ref))


def test_info_folder_without_config(tvlab, tmp_path, one_line_error):
    assert "no config.json" in one_line_error(tvlab("info", "--model", tmp_path))


def test_help_lists_the_commands(tvlab):
    proc = tvlab("--help")
    assert proc.returncode == 0
    for cmd in ("gui", "info", "selftest", "bench"):
        assert cmd in proc.stdout
