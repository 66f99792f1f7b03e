"""Transformer Visual Lab: a desktop lab for looking inside transformer language models.

Importing the package switches the Hugging Face libraries to offline mode before any of
them is imported, so the lab never reaches the network unless the user allows it
(``TVLAB_ALLOW_NETWORK=1``).
"""
import os

__version__ = "0.1.0"

if os.environ.get("TVLAB_ALLOW_NETWORK", "") not in ("1", "true", "yes"):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
