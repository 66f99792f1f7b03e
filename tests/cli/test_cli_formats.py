"""`tvlab formats` end to end: the JSON shape, torch's values, human output, bad input."""
import json
import math


def test_formats_json_per_format(tvlab):
    proc = tvlab("formats", "--value", "3.14159", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["value"] == 3.14159
    fmts = out["formats"]
    assert list(fmts) == ["fp32", "fp16", "bf16", "int8", "int4", "int8_scaled", "int4_scaled"]
    for entry in fmts.values():
        assert set(entry) == {"stored", "bits", "error", "overflow"}
    assert fmts["fp16"] == {"stored": 3.140625, "bits": "0 10000 1001001000",
                            "error": abs(3.140625 - 3.14159), "overflow": False}
    assert fmts["bf16"]["stored"] == 3.140625 and fmts["bf16"]["bits"] == "0 10000000 1001001"
    assert fmts["fp32"]["bits"] == "0 10000000 10010010000111111010000"
    assert fmts["int8"]["stored"] == 3 and fmts["int8"]["bits"] == "0 0000011"


def test_formats_json_overflow_is_null_and_flagged(tvlab):
    out = json.loads(tvlab("formats", "--value", "70,000", "--json", "--table").stdout)
    assert out["formats"]["fp16"] == {"stored": None, "bits": "0 11111 0000000000", "error": None, "overflow": True}
    assert out["formats"]["bf16"]["stored"] == 70144 and out["formats"]["bf16"]["error"] == 144
    table = {r["fmt"]: r for r in out["table"]}
    assert table["fp16"]["max"] == 65504 and math.isclose(table["fp32"]["max"], 3.4028234663852886e38)


def test_formats_human_output(tvlab):
    proc = tvlab("formats", "--value", "1e-8", "--table")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    fp16 = next(line for line in lines if line.strip().startswith("fp16 ") and "0 00000" in line)
    assert "underflow → 0" in fp16
    assert any("±3×10^38" in line for line in lines)


def test_formats_bad_value_is_one_line_exit_2(tvlab, one_line_error):
    proc = tvlab("formats", "--value", "three")
    assert proc.returncode == 2
    assert "is not a number" in one_line_error(proc)
    proc = tvlab("formats", "--value", "1", "--range", "0")
    assert proc.returncode == 2 and "positive" in one_line_error(proc)
