"""Lesson files: the shipped lessons follow the course, bad files are reported, not fatal."""
import json

import pytest

from lab.core import lessons
from lab.core.resources import resource

COURSE_TOPICS = [
    "tokenization", "embeddings and position", "self-attention",
    "encoder, decoder and encoder-decoder", "decoding strategies",
    "zero/one/few-shot prompting and the context window", "precision and memory",
    "scaling laws and Chinchilla", "number formats and quantization",
    "pre-training objectives",
    "use cases, the generative AI project lifecycle, prompting versus fine-tuning",
    "domain adaptation, domain-specific pre-training, BloombergGPT",
    "interventions",
]


def write(folder, name, data):
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


GOOD = {"title": "My lesson", "explanation": "Why.", "try": ["Do this."], "model": "zoo:bard-gpt",
        "prompt": "Hello there", "selection": {"layer": 1, "head": 0, "token": "there"},
        "raise": "attention", "panels": {"attention": {"view": "head"}}}


def test_shipped_lessons_follow_the_course_in_order():
    found = lessons.load_lessons(check_models=False)
    shipped = [l for l in found if l.path.parent == resource("lessons")]
    assert [l.topic for l in shipped] == COURSE_TOPICS
    for lesson in shipped:
        assert lesson.ok, lesson.problem
        assert len(lesson.steps) >= 3 and lesson.explanation
        assert lesson.model is None or lesson.model.startswith("zoo:")
    attention = next(l for l in shipped if l.topic == "self-attention")
    assert attention.prompt == "The teacher taught the students with the book."
    assert attention.selection["token"] == "with" and attention.raise_panel == "attention"
    assert any("4 GB" in l.explanation for l in shipped if l.topic == "precision and memory")
    assert any("20 tokens per parameter" in l.explanation for l in shipped if "Chinchilla" in l.topic)
    formats = next(l for l in shipped if l.topic == "number formats and quantization")
    assert "70,144" in formats.explanation and formats.panels["precision"]["view"] == "formats"
    objectives = next(l for l in shipped if l.topic == "pre-training objectives")
    assert objectives.raise_panel == "objectives" and "span corruption" in objectives.explanation


def test_course_numbers_in_the_lessons_are_the_labs():
    """Where the course and the lab's data differ, a lesson says both; the lab's figures are
    the ones its own code computes."""
    from lab.core import memory
    from lab.core import scaling as sc

    by_id = {l.id: l for l in lessons.load_lessons(check_models=False)}
    bb = next(m for m in sc.load_known_models() if m.name.startswith("BloombergGPT"))
    domain = by_id["12-domain-adaptation"].explanation
    assert "50B params, compute-optimal" in domain                   # the course's words
    assert f"{bb.params / 1e9:.1f}B parameters" in domain and f"{bb.tokens / 1e9:.0f}B tokens" in domain
    assert f"{bb.tokens_per_param:.1f} tokens per parameter" in domain
    opt_n, opt_d = sc.optimal_params_tokens("chinchilla-1", 6 * bb.params * bb.tokens)
    assert f"{opt_n / 1e9:.1f}B parameters on {opt_d / 1e9:.0f}B tokens" in domain
    assert "2.64 tokens per word" in domain and "1.46" in domain and "about 2.5 against 1.5" in domain
    life = by_id["11-use-cases-lifecycle"].explanation
    for stage in ("Define the use case", "Choose a model", "Adapt and improve", "Evaluate", "Deploy",
                  "extra infrastructure"):
        assert stage in life
    mem7 = by_id["07-precision-memory"].explanation
    ex = memory.course_example(1e9)
    assert f"{ex['rule_of_thumb_bytes'] / 1e9:.0f} GB" in mem7 and f"{ex['states_fp32_bytes'] / 1e9:.0f} GB" in mem7
    scaling = by_id["08-scaling-laws"].explanation
    pf = sc.FLOPS_PER_PF_DAY
    assert 8 * sc.GPU_PEAK_FLOPS["V100"] * 86400 == pytest.approx(pf)       # 8 V100s for a day
    assert f"{pf / (sc.GPU_PEAK_FLOPS['A100'] * 86400):.1f} A100s" in scaling       # 3.2 at the dense peak
    assert "sparse peak" in scaling and "LLaMA 65B trained on 1.4T" in scaling and "Llama 2 70B trained on 2T" in scaling


def test_shipped_lessons_are_usable_with_the_zoo(tiny_gpt2, tiny_t5, tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "bard-gpt").symlink_to(tiny_gpt2)
    (zoo / "dates-t5").symlink_to(tiny_t5)
    monkeypatch.setenv("TVLAB_ZOO", str(zoo))
    found = [l for l in lessons.load_lessons() if l.path.parent == resource("lessons")]
    assert all(l.ok for l in found), [l.problem for l in found if not l.ok]


def test_a_good_file_parses_with_every_field(tmp_path):
    lesson = lessons.parse(write(tmp_path, "mine.json", GOOD))
    assert lesson.ok and lesson.id == "mine" and lesson.title == "My lesson"
    assert lesson.selection == {"layer": 1, "head": 0, "token": "there"}
    assert lesson.panels == {"attention": {"view": "head"}}


def test_toml_lessons_read_too(tmp_path):
    path = write(tmp_path, "t.toml", '''
title = "In TOML"
explanation = """Two
lines."""
try = ["one", "two"]
[selection]
layer = 2
[panels.decoding]
strategy = "greedy"
''')
    lesson = lessons.parse(path)
    assert lesson.steps == ["one", "two"] and lesson.panels["decoding"]["strategy"] == "greedy"


@pytest.mark.parametrize("data, reason", [
    ("{ not json", "not valid JSON (line 1"),
    ({**GOOD, "try": "just one step"}, "field 'try' must be a list"),
    ({**GOOD, "title": 3}, "field 'title' must be text"),
    ({**GOOD, "selection": {"layer": -1}}, "selection 'layer' must be a whole number"),
    ({**GOOD, "selection": {"stack": "sideways"}}, "selection 'stack' must be one of"),
    ({**GOOD, "selection": {"colour": 1}}, "unknown selection field 'colour'"),
    ({**GOOD, "panels": {"attention": "head"}}, "panels.attention must be a table"),
    ({**GOOD, "promtp": "typo"}, "unknown field 'promtp'"),
    ({k: v for k, v in GOOD.items() if k != "title"}, "field 'title' is missing"),
    ({**GOOD, "format": 9}, "needs a newer lab"),
    ([1, 2], "must hold one table"),
])
def test_malformed_files_come_back_disabled_with_the_reason(tmp_path, monkeypatch, data, reason):
    monkeypatch.setenv("TVLAB_LESSONS", str(tmp_path))
    write(tmp_path, "broken.json", data)
    found = {l.path.name: l for l in lessons.load_lessons(check_models=False)}
    bad = found["broken.json"]
    assert not bad.ok and reason in bad.problem and bad.problem.startswith("broken.json ")
    # the other lessons are unaffected
    assert sum(l.ok for l in found.values()) >= 8


def test_a_missing_model_disables_the_lesson_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TVLAB_LESSONS", str(tmp_path))
    write(tmp_path, "a.json", {**GOOD, "model": "zoo:no-such-model"})
    write(tmp_path, "b.json", {**GOOD, "model": str(tmp_path / "gone")})
    write(tmp_path, "c.json", {**GOOD, "model": None})
    found = {l.path.name: l for l in lessons.load_lessons()}
    assert "zoo:no-such-model, which is not installed" in found["a.json"].problem
    assert "gone" in found["b.json"].problem and not found["b.json"].ok
    assert found["c.json"].ok   # no model: keeps whatever is loaded


def test_extra_folders_and_order(tmp_path):
    write(tmp_path, "z.json", {**GOOD, "title": "Early", "order": 1})
    found = lessons.load_lessons([tmp_path], check_models=False)
    assert found[0].title == "Early"
    assert lessons.load_lessons([tmp_path / "missing"], check_models=False)   # no crash


def test_token_resolution_by_word_or_position():
    toks = ["The", "Ġteacher", "Ġtaught", "Ġthe", "Ġstud", "ents", "Ġwith", "Ġthe", "Ġbook", "."]
    assert lessons.resolve_token(toks, "with") == 6
    assert lessons.resolve_token(toks, "The") == 0
    assert lessons.resolve_token(toks, "students") == 4       # the first piece of a split word
    assert lessons.resolve_token(toks, -1) == 9
    assert lessons.resolve_token(toks, 3) == 3
    assert lessons.resolve_token(toks, 99) is None
    assert lessons.resolve_token(toks, "cat") is None
    assert lessons.resolve_token(["[CLS]", "the", "bank", "##s"], "banks") == 2
