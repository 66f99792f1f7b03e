"""The lab's bundled model zoo and the scripts that train it.

``bard-gpt``, ``bard-bert`` and ``dates-t5`` live in folders beside this file, in standard
Hugging Face format, with the scaling sweep's ``scaling_runs.csv``. The lab finds them
itself (``lab.core.models.zoo_models()`` and ``resolve("zoo:bard-gpt")``); training is in
``models/training`` (``python -m models.training.train {gpt,bert,t5} --out models/NAME``;
see README.md here).
"""
