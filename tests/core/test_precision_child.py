"""The GUI's conversion in a child process: the in-process report, the export reused across
children, cancel, the same errors, and a child that dies or cannot start."""
import logging
import sys

import psutil
import pytest

from lab.core import models, precision
from lab.core.errors import Cancelled, InputError, LabError, ModelLoadError
from lab.core.jobs import Job
from lab.core.precision import child

PAIR = ("fp32", "int8")
REUSED = "The fp32 export was reused from earlier in this session (same weights)."


def converters_running() -> list:
    """Conversion processes this test process started that are still alive."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and any(
                    part in (child.CHILD_COMMAND, "_fake_child") for part in p.cmdline()):
                found.append(p)
        except psutil.Error:       # ended while we looked
            pass
    return found


def leftovers(parent) -> list:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


@pytest.fixture(scope="module")
def runs(loaded, tiny_gpt2, tmp_path_factory):
    """The in-process conversion and two child conversions of the same folder, one cache."""
    root = tmp_path_factory.mktemp("child")
    cache = root / "cache"
    stages = []
    inproc = precision.convert(loaded("gpt2"), root / "in", PAIR, reuse_export=False, latency_runs=2)
    first = child.convert_in_child(str(tiny_gpt2), "fp32", root / "child1", PAIR, cache_folder=cache,
                                   latency_runs=2, job=Job(lambda f, s: stages.append((f, s))))
    second = child.convert_in_child(str(tiny_gpt2), "fp32", root / "child2", PAIR, cache_folder=cache,
                                    latency_runs=2)
    return dict(inproc=inproc, first=first, second=second, stages=stages, root=root, cache=cache)


def test_the_child_gives_the_in_process_report(runs):
    a, b = runs["inproc"], runs["first"]
    assert (b.model, b.kind, b.graph, b.opset, b.eval_text, b.eval_tokens, b.per_channel, b.threads) == \
        (a.model, a.kind, a.graph, a.opset, a.eval_text, a.eval_tokens, a.per_channel, a.threads)
    assert b.out == str(runs["root"] / "child1")
    assert b.perplexity_torch == pytest.approx(a.perplexity_torch, rel=1e-6)
    assert [r.precision for r in b.rows] == list(PAIR)
    for ra, rb in zip(a.rows, b.rows):
        assert (rb.file, rb.file_bytes, rb.param_bytes, rb.bytes_by_dtype, rb.top1_agreement, rb.error) == \
            (ra.file, ra.file_bytes, ra.param_bytes, ra.bytes_by_dtype, ra.top1_agreement, ra.error)
        for k in ("max_abs_logit_diff", "mean_abs_logit_diff", "kl", "perplexity"):
            assert getattr(rb, k) == pytest.approx(getattr(ra, k), rel=1e-4, abs=1e-6), k
        assert rb.notes == ra.notes
    assert sorted(p.name for p in (runs["root"] / "child1").iterdir()) == \
        sorted(p.name for p in (runs["root"] / "in").iterdir())
    # where the model came from, said truly; the rest of the notes as in-process
    assert b.notes[0].startswith("The conversion ran in a separate process from the model's files (fp32")
    assert b.notes[1:] == a.notes
    # the child's progress reached the job, stage by stage, in order
    seen = [s.split(":")[0] for _, s in runs["stages"]]
    assert seen[0] == "starting" and {"export", "quantize", "verify"} <= set(seen)
    fractions = [f for f, _ in runs["stages"]]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    assert leftovers(runs["root"]) == [] and converters_running() == []


def test_a_second_child_reuses_the_export_of_the_same_weights(runs):
    assert REUSED not in runs["first"].notes
    assert REUSED in runs["second"].notes
    assert [r.file_bytes for r in runs["second"].rows] == [r.file_bytes for r in runs["first"].rows]
    assert len(list(runs["cache"].glob("*.onnx"))) == 1


def test_the_weights_key_follows_the_files_and_the_dtype(loaded, tiny_gpt2):
    lm = loaded("gpt2")
    key = child.weights_key(lm, "fp32")
    assert key == child.weights_key(lm, "fp32") and key != child.weights_key(lm, "fp16")


def test_cancel_in_the_export_stage_leaves_the_folder_and_ends_the_child(tiny_gpt2, tmp_path, caplog):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "model-fp32.onnx").write_bytes(b"an earlier result")
    stages = []

    def on_progress(fraction, stage):
        stages.append(stage)
        if stage.startswith("export"):
            job.cancel()

    job = Job(on_progress)
    with caplog.at_level(logging.WARNING, logger="lab"), pytest.raises(Cancelled):
        child.convert_in_child(str(tiny_gpt2), "fp32", out, PAIR, force=True, job=job,
                               cache_folder=tmp_path / "cache")
    assert "killed" not in caplog.text                                   # it stopped by itself
    assert any(s.startswith("export") for s in stages)
    assert not any(s.startswith(("quantize", "verify")) for s in stages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]      # no temporary folder, no cache
    assert (out / "model-fp32.onnx").read_bytes() == b"an earlier result"
    assert [p.name for p in out.iterdir()] == ["model-fp32.onnx"]
    assert converters_running() == []


def test_a_child_that_ignores_cancel_is_killed_and_its_temp_folder_removed(tmp_path, monkeypatch):
    out = tmp_path / "onnx"
    script = ("import json, os, sys, time; sys.stdin.readline(); "
              f"os.makedirs({str(tmp_path / '.onnx.tmp-abc')!r}); "
              "print(json.dumps({'progress': 0.1, 'stage': 'export: tracing'}), flush=True); time.sleep(120)")
    monkeypatch.setattr(child, "child_command", lambda: [sys.executable, "-c", script, "_fake_child"])
    job = Job(lambda f, s: s.startswith("export") and job.cancel())
    with pytest.raises(Cancelled):
        child.convert_in_child("zoo:whatever", "fp32", out, PAIR, job=job, kill_after_s=0.5,
                               cache_folder=tmp_path / "cache")
    assert list(tmp_path.iterdir()) == []
    assert converters_running() == []


def test_a_folder_with_files_gives_the_in_process_message(loaded, tiny_gpt2, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as inproc:
        precision.convert(loaded("gpt2"), out, PAIR)
    with pytest.raises(InputError) as err:
        child.convert_in_child(str(tiny_gpt2), "fp32", out, PAIR)
    assert str(err.value) == str(inproc.value)
    assert isinstance(err.value, precision.FolderNotEmpty)   # the panel's dialog reads its ``holds``
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert converters_running() == []


def test_a_model_that_fails_to_load_in_the_child_gives_the_same_error(tmp_path):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as inproc:
        models.load(str(bad))
    with pytest.raises(ModelLoadError) as err:
        child.convert_in_child(str(bad), "fp32", tmp_path / "onnx", PAIR, cache_folder=tmp_path / "cache")
    assert str(err.value) == str(inproc.value) and len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "onnx").exists() and leftovers(tmp_path) == []
    assert converters_running() == []


def test_a_child_that_dies_is_one_error_naming_its_status(tmp_path, monkeypatch, caplog):
    script = "import sys; print('not json'); sys.stderr.write('first\\nthe exporter crashed\\n'); sys.exit(3)"
    monkeypatch.setattr(child, "child_command", lambda: [sys.executable, "-c", script, "_fake_child"])
    with caplog.at_level(logging.ERROR, logger="lab"), pytest.raises(LabError) as err:
        child.convert_in_child("zoo:whatever", "fp32", tmp_path / "onnx", PAIR)
    message = str(err.value)
    assert type(err.value) is LabError and len(message.splitlines()) == 1
    assert "exited with status 3" in message and "the exporter crashed" in message
    assert "first" in caplog.text and "the exporter crashed" in caplog.text
    assert not (tmp_path / "onnx").exists()


def test_a_child_that_cannot_start_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(child, "child_command", lambda: [str(tmp_path / "no-such-tvlab"), child.CHILD_COMMAND])
    with pytest.raises(LabError, match="Could not start the conversion process") as err:
        child.convert_in_child("zoo:whatever", "fp32", tmp_path / "onnx", PAIR)
    assert "no-such-tvlab" in str(err.value) and len(str(err.value).splitlines()) == 1


def test_the_child_command_runs_this_lab():
    assert child.child_command() == [sys.executable, "-m", "lab", child.CHILD_COMMAND]


def test_a_kept_export_folder_drops_the_least_recently_used_first(tmp_path, monkeypatch):
    from lab.core.precision import export

    monkeypatch.setattr(export, "_EXPORT_CACHE_MAX_BYTES", 250)
    src = tmp_path / "model-fp32.onnx"
    src.write_bytes(b"x" * 100)
    slots = [export.FolderExport(tmp_path / "cache", k) for k in ("a", "b", "c")]
    assert slots[0].find() is None
    slots[0].keep(src)
    slots[1].keep(src)
    assert slots[0].find().read_bytes() == b"x" * 100           # "a" is now the most recently used
    slots[2].keep(src)                                           # 300 bytes > 250: "b" goes
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.onnx", "c.onnx"]


def test_in_process_the_export_is_reused_until_a_weight_changes(tiny_gpt2, tmp_path):
    import torch

    lm = models.load(str(tiny_gpt2))
    first = precision.convert(lm, tmp_path / "a", ("fp32",), latency_runs=1)
    again = precision.convert(lm, tmp_path / "b", ("fp32",), latency_runs=1)
    with torch.no_grad():
        next(lm.model.parameters()).add_(0.5)
    edited = precision.convert(lm, tmp_path / "c", ("fp32",), latency_runs=1)
    assert REUSED not in first.notes and REUSED in again.notes and REUSED not in edited.notes
    assert not any("separate process" in n for n in first.notes + again.notes)
