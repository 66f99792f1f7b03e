"""tvlab convert end to end: files on disk, the JSON readout, --force, bad input."""
import json

import onnxruntime as ort

ROW_KEYS = {"precision", "file_bytes", "param_bytes", "runtime_bytes", "latency_ms_median",
            "max_abs_logit_diff", "top1_agreement", "kl", "perplexity", "nan_count"}


def test_convert_json_writes_files_and_report(tvlab, tiny_gpt2, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "model-fp16.onnx").write_bytes(b"stale result of an earlier run")
    (out / "notes.txt").write_text("mine")
    # a folder that holds files: refused without --force (one line, exit 2, nothing touched)
    refused = tvlab("convert", "--model", tiny_gpt2, "--out", out, "--precisions", "fp32,int8")
    assert refused.returncode == 2
    assert "already holds 2 files" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["model-fp16.onnx", "notes.txt"]

    r = tvlab("convert", "--model", tiny_gpt2, "--out", out, "--precisions", "fp32,int8", "--force", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)                      # stdout is JSON only (exporter chatter kept out)
    assert data["model"] == str(tiny_gpt2)
    assert [row["precision"] for row in data["rows"]] == ["fp32", "int8"]
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        path = out / f"model-{row['precision']}.onnx"
        assert row["file_bytes"] == path.stat().st_size
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    fp32, int8 = data["rows"]
    assert fp32["max_abs_logit_diff"] < 1e-4 and fp32["top1_agreement"] == 1.0 and fp32["nan_count"] == 0
    assert int8["param_bytes"] < 0.35 * fp32["param_bytes"]
    assert json.loads((out / "report.json").read_text())["rows"] == data["rows"]
    # --force replaced the lab's own stale file and left the user's alone
    assert sorted(p.name for p in out.iterdir()) == ["model-fp32.onnx", "model-int8.onnx", "notes.txt",
                                                     "report.json"]


def test_bad_input_is_one_line(tvlab, tiny_gpt2, tmp_path):
    r = tvlab("convert", "--model", tiny_gpt2, "--out", tmp_path / "o", "--precisions", "fp32,fp8")
    assert r.returncode == 2 and "fp8" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = tvlab("convert", "--model", tiny_gpt2, "--out", blocker)
    assert r.returncode == 2 and "is a file" in r.stderr
    r = tvlab("convert", "--model", tmp_path / "missing", "--out", tmp_path / "o2")
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_the_gui_conversion_child_is_a_hidden_command(tvlab):
    import subprocess
    import sys

    import lab.cli
    from lab.core.precision.child import CHILD_COMMAND

    assert lab.cli._CHILD_COMMAND == CHILD_COMMAND
    r = tvlab("--help")
    assert r.returncode == 0 and "convert" in r.stdout and CHILD_COMMAND not in r.stdout
    # it speaks the child protocol, not argparse: a bad request is one JSON error line on stdout
    r = subprocess.run([sys.executable, "-m", "lab", CHILD_COMMAND], input="not a request\n",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["error"]["message"].startswith("bad request")
