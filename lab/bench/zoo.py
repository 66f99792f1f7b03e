"""`tvlab bench zoo`: how long the bundled models take to load once the imports are warm.

Per zoo model: transformers' own ``from_pretrained`` of the model and its tokenizer
(target: under 1 s, what the zoo's README promises), and the lab's ``models.load`` of the
same folder against it.
"""
from __future__ import annotations

from lab.bench import Figure, time_ms

NAME = "zoo"


def _auto_class(folder):
    import json

    import transformers as tf

    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if cfg.get("is_encoder_decoder"):
        return tf.AutoModelForSeq2SeqLM
    if any("MaskedLM" in a for a in cfg.get("architectures") or []):
        return tf.AutoModelForMaskedLM
    return tf.AutoModelForCausalLM


def run(device: str, quick: bool) -> list[Figure]:
    import transformers as tf

    from lab.core import models

    repeat = 1 if quick else 5
    figures: list[Figure] = []
    for name, folder in models.zoo_models().items():
        auto = _auto_class(folder)

        def bare():
            auto.from_pretrained(folder, attn_implementation="eager")
            tf.AutoTokenizer.from_pretrained(folder)

        base = time_ms(bare, repeat=repeat)
        lab = time_ms(lambda: models.load(f"zoo:{name}", device=device), repeat=repeat)
        figures.append(Figure(f"zoo:{name} loaded by transformers (model + tokenizer)", base, "ms",
                              target="under 1 s", ok=base < 1000))
        figures.append(Figure(f"zoo:{name} loaded by the lab", lab, "ms", base,
                              "transformers from_pretrained + tokenizer"))
    return figures
