"""Zero-, one- and few-shot prompts from an instruction, examples and a query (pure text)."""
from __future__ import annotations

MODES = ("zero-shot", "one-shot", "few-shot")


def build_prompt(mode: str, instruction: str, examples: list[tuple[str, str]], query: str) -> tuple[str, dict]:
    """The course's template; returns (prompt, {part: text}) so a UI can measure each part."""
    n = {"zero-shot": 0, "one-shot": 1, "few-shot": len(examples)}[mode]
    shots = "\n\n".join(f"Input: {a}\nOutput: {b}" for a, b in examples[:n])
    q = f"Input: {query}\nOutput:"
    parts = {"instruction": instruction.strip(), "examples": shots, "query": q}
    return "\n\n".join(p for p in parts.values() if p), parts


def parse_examples(text: str) -> list[tuple[str, str]]:
    """One example a line, ``input => output``; lines without an arrow are skipped."""
    out = []
    for line in text.splitlines():
        if "=>" in line:
            a, b = line.split("=>", 1)
            if a.strip():
                out.append((a.strip(), b.strip()))
    return out
