"""`tvlab bench soak` runs a (very) short day end to end in the real main window: analyses,
model switches, a conversion in its child process, and a report with memory and gaps."""
import pytest

from lab.core import models


@pytest.mark.skipif(not models.zoo_models(), reason="the soak needs the bundled zoo")
def test_a_short_soak_reports_memory_switches_and_no_errors(qtbot, tmp_path, monkeypatch):
    from lab.bench import soak

    monkeypatch.setenv("TVLAB_SETTINGS_DIR", str(tmp_path / "settings"))
    lines = []
    report = soak.run_soak(steps=4, progress=lines.append)
    assert report["errors"] == []
    assert report["analyses"] == 4 and report["model_switches"] == 4
    assert "error" not in report["conversion"] and report["conversion"]["precisions"] == ["fp32", "int8"]
    assert [r["step"] for r in report["rss"]] == [0, 4]
    assert all(r["rss_mb"] > 0 for r in report["rss"])
    assert report["rss_after_first_switch_mb"] > 0 and report["growth_after_first_switch"] is not None
    assert report["gui_worst_gap_ms"] > 0
    assert lines and lines[-1].startswith("step 4/4")
