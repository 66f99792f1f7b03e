"""The Model panel's Folders list: remembered, told apart, failed loads dropped, selection
following the loaded model."""
import shutil

from PySide6.QtCore import Qt

from lab.ui.panels.model import ModelPanel


def _folders(panel):
    return [(panel.folders.child(i).text(0), panel.folders.child(i).data(0, Qt.UserRole),
             panel.folders.child(i).toolTip(0)) for i in range(panel.folders.childCount())]


def test_folders_are_distinct_remembered_and_failed_ones_dropped(qtbot, session, make_panel, tiny_gpt2, tmp_path):
    a = shutil.copytree(tiny_gpt2, tmp_path / "one" / "model")
    b = shutil.copytree(tiny_gpt2, tmp_path / "two" / "model")
    bad = tmp_path / "broken"
    bad.mkdir()
    panel = make_panel(ModelPanel)
    for folder in (a, b):
        panel.load_ref(str(folder))
        qtbot.waitUntil(lambda folder=folder: session.card is not None and session.card.ref == str(folder),
                        timeout=60000)
    shown = _folders(panel)
    assert [p for _, p, _ in shown] == [str(a), str(b)]
    assert [name for name, _, _ in shown] == ["one/model", "two/model"]          # not "model" twice
    assert [tip for _, _, tip in shown] == [str(a), str(b)]                      # the full path
    assert panel.selected_ref() == str(b)
    panel.load_ref(str(bad))                                                     # no config.json
    qtbot.waitUntil(lambda: not panel.error.isHidden(), timeout=60000)
    qtbot.waitUntil(lambda: panel.selected_ref() == str(b), timeout=10000)       # back on the loaded model
    assert [p for _, p, _ in _folders(panel)] == [str(a), str(b)]
    # a relaunch (a new panel on the same settings) lists the folders that loaded
    again = make_panel(ModelPanel)
    assert sorted(p for _, p, _ in _folders(again)) == sorted([str(a), str(b)])
    assert {name for name, _, _ in _folders(again)} == {"one/model", "two/model"}
