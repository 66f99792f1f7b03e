"""The panel protocol: panels keep the base signatures, and nothing in lab/ui probes a
panel with hasattr/getattr or calls its private methods."""
import ast
import inspect
from pathlib import Path

import pytest

import lab.ui
from lab.ui.panels.base import Panel, panel_classes

PROTOCOL = [name for name, fn in vars(Panel).items()
            if callable(fn) and not name.startswith("_") and name not in ("sizeHint",)]
UI = Path(lab.ui.__file__).parent

# Every hasattr/getattr left in lab/ui, and why it is not a panel probe: (file, source).
ALLOWED = {
    ("controllers/decoding.py", 'getattr(lm.tokenizer, "mask_token", None)'):
        "a Hugging Face tokenizer (worker side), not every one has a mask token",
    ("widgets/precision_chart.py", "getattr(r, attr)"): "a column of a measurement row, by its field name",
    ("widgets/scaling_plots.py", "getattr(m, attr)"): "a known model's field, by the name the plot shows",
    ("session.py", 'getattr(fn, "__self__", None)'): "checks that a worker function holds no widget",
    ("session.py", 'getattr(fn, "__closure__", None)'): "checks that a worker function holds no widget",
    ("worker.py", "getattr(ctl, task.op)"): "a controller's operation, named by the request (lab.ui.controllers)",
}


def test_the_protocol_is_declared_on_panel():
    assert {"on_model_changed", "on_trace_changed", "on_selection_changed", "selftest_ready", "apply_lesson",
            "lesson_state", "export_data", "export_views", "export_png", "restore_defaults", "take_focus",
            "submit"} <= set(PROTOCOL)
    for name in PROTOCOL:
        assert inspect.getdoc(getattr(Panel, name)) or name.startswith("on_"), f"Panel.{name} has no docstring"


@pytest.mark.parametrize("cls", panel_classes(), ids=lambda c: c.panel_id)
def test_panels_keep_the_protocol_signatures(cls):
    for name in PROTOCOL:
        mine, base = inspect.signature(getattr(cls, name)), inspect.signature(getattr(Panel, name))
        assert list(mine.parameters) == list(base.parameters), f"{cls.__name__}.{name}{mine} != Panel.{name}{base}"
        for p, q in zip(mine.parameters.values(), base.parameters.values()):
            assert (p.kind, p.default) == (q.kind, q.default), f"{cls.__name__}.{name}{mine} != Panel.{name}{base}"


def _calls(tree, names):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            yield node


def test_no_hasattr_or_getattr_probing_in_lab_ui():
    found = {}
    for path in sorted(UI.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in _calls(ast.parse(source), ("hasattr", "getattr")):
            found[(path.relative_to(UI).as_posix(), ast.get_source_segment(source, node))] = node.lineno
    unexplained = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not unexplained, f"hasattr/getattr in lab/ui (use a Panel method instead): {unexplained}"


# Private attributes of other objects that lab/ui may touch, and why: (file, source).
ALLOWED_PRIVATE = {
    ("worker.py", "task.job._on_progress"): "the worker installs the job's progress hook (lab.core.jobs)",
}


def test_no_private_calls_across_classes_in_lab_ui():
    """``x._name`` only on ``self``/``cls``, never on a panel, the window or another object
    (modules are another matter, outside the panel protocol)."""
    bad = []
    for path in sorted(UI.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        modules = {alias.asname or alias.name for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls", *modules):
                    continue
                where = (path.relative_to(UI).as_posix(), ast.get_source_segment(source, node))
                if where not in ALLOWED_PRIVATE:
                    bad.append(f"{where[0]}:{node.lineno} {where[1]}")
    assert not bad, "private attributes reached across objects:\n" + "\n".join(bad)


def test_nothing_writes_the_session_selection_directly():
    for path in sorted(UI.rglob("*.py")):
        if path.name == "session.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    assert not (isinstance(t, ast.Attribute) and t.attr == "selection"), \
                        f"{path.relative_to(UI)}:{node.lineno} writes .selection (use session.select)"
