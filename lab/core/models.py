"""Resolve a model reference and load it safely, offline.

A reference is ``zoo:NAME`` (the lab's bundled models), a local folder, or a hub id that
is already in the local Hugging Face cache. Loading never runs code from the model
folder (``trust_remote_code`` is never set; a config that asks for remote code is
refused), prefers safetensors, loads pickled ``.bin`` weights only with
``weights_only=True``, and picks the head from the config.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import lab  # noqa: F401  (offline mode before transformers is imported)

# Devices live in lab.core.devices; ``models.<name>`` keeps working for them.
from lab.core.devices import (  # noqa: F401
    DTYPES,
    SPLIT,
    available_devices,
    choose_device,
    device_errors,
    device_label,
    device_memory,
    gpu_memory,
    parse_max_memory,
    torch_dtype,
)
from lab.core.errors import DeviceError, ModelLoadError, first_line
from lab.core.jobs import Job

KIND_DECODER = "decoder-only"
KIND_ENCODER = "encoder-only"
KIND_SEQ2SEQ = "encoder-decoder"
KINDS = (KIND_DECODER, KIND_ENCODER, KIND_SEQ2SEQ)

DEFAULT_MODEL = "zoo:bard-gpt"

_REPO_ROOT = Path(__file__).resolve().parents[2]


def zoo_dirs() -> list[Path]:
    """Folders searched for ``zoo:NAME``, first match wins.

    ``TVLAB_ZOO`` (a folder), the package's own ``lab/zoo`` (installed or bundled), then
    the repository's ``models/`` (a source checkout).
    """
    dirs = []
    if os.environ.get("TVLAB_ZOO"):
        dirs.append(Path(os.environ["TVLAB_ZOO"]).expanduser())
    dirs.append(Path(__file__).resolve().parents[1] / "zoo")
    dirs.append(_REPO_ROOT / "models")
    return dirs


def zoo_models() -> dict[str, Path]:
    """Every bundled model: ``{name: folder}`` for folders holding a config.json."""
    found: dict[str, Path] = {}
    for d in zoo_dirs():
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if (sub / "config.json").is_file() and sub.name not in found:
                found[sub.name] = sub
    return found


@dataclass
class CachedModel:
    repo_id: str
    path: Path
    size_bytes: int


def hub_cache_dir() -> Optional[str]:
    """The hub cache folder as the environment says now (HF_HUB_CACHE, then HF_HOME/hub);
    None for huggingface_hub's default. Read at call time, not at import time."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def cached_models() -> list[CachedModel]:
    """Models in the local Hugging Face cache (huggingface_hub's cache scan), newest first."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir=hub_cache_dir())
    except Exception:  # no cache folder yet, or an unreadable one: nothing to list
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = next((r for r in repo.revisions if "main" in r.refs),
                   max(repo.revisions, key=lambda r: r.last_modified))   # what the hub id means today
        if (Path(rev.snapshot_path) / "config.json").is_file():
            out.append(CachedModel(repo.repo_id, Path(rev.snapshot_path), repo.size_on_disk))
    out.sort(key=lambda c: c.repo_id)
    return out


def cached_snapshot(repo_id: str) -> Optional[Path]:
    """The folder a hub id stands for in the local cache (``refs/main``'s snapshot), or None.

    huggingface_hub's own lookup: a few file reads, no scan of the cache, no network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=hub_cache_dir()))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, ValueError):
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve(ref: str) -> tuple[Path, str]:
    """Turn a reference into ``(folder, source)``; source is zoo, folder or cache."""
    ref = (ref or "").strip()
    if not ref:
        raise ModelLoadError("No model given: name a zoo model (zoo:NAME), a folder, or a cached hub id.")
    if ref.startswith("zoo:"):
        name = ref[4:]
        zoo = zoo_models()
        if name not in zoo:
            names = ", ".join(f"zoo:{n}" for n in zoo) or "none installed"
            raise ModelLoadError(f"No bundled model called {ref!r} (available: {names}).")
        return zoo[name], "zoo"
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{ref} is a file, not a model folder: choose the folder that holds config.json.")
        return path.resolve(), "folder"
    looks_like_path = ref.startswith((".", "/", "~")) or os.sep + os.sep in ref or ref.count("/") > 1
    if not looks_like_path:
        cached = cached_snapshot(ref)
        if cached is not None:
            return cached, "cache"
    if looks_like_path:
        raise ModelLoadError(f"The folder {ref} does not exist.")
    raise ModelLoadError(
        f"{ref!r} is neither a folder nor a model in the local Hugging Face cache "
        "(the lab works offline: download it once with network access, or point at its folder)."
    )


# --- inspecting a folder without running anything from it ----------------------------

def read_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelLoadError(f"{folder} has no config.json, so it is not a Hugging Face model folder.")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{cfg_path} is not valid JSON ({err}).") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{cfg_path} does not hold a JSON object.")
    return cfg


def _refuse_remote_code(folder: Path, cfg: dict) -> None:
    if "auto_map" in cfg:
        raise ModelLoadError(
            f"{folder.name} needs custom code from its folder (config.json has auto_map); "
            "the lab never runs code from a model folder, so it cannot load this model."
        )
    tok_cfg = folder / "tokenizer_config.json"
    if tok_cfg.is_file():
        try:
            tcfg = json.loads(tok_cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise ModelLoadError(f"{tok_cfg} is not valid JSON.") from None
        if isinstance(tcfg, dict) and "auto_map" in tcfg:
            raise ModelLoadError(
                f"{folder.name}'s tokenizer needs custom code from its folder (auto_map); "
                "the lab never runs code from a model folder."
            )


def check_safetensors(path: Path) -> None:
    """Open a safetensors file's header with the library's own reader, which rejects a
    truncated file, a short header and trailing bytes, so a damaged file fails clearly."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{path.name} is truncated or corrupt ({first_line(err)}); "
                             "re-download or re-save the model.") from None


def weight_files(folder: Path) -> tuple[list[Path], bool]:
    """The weight files to load and whether they are safetensors."""
    for index_name, safe in (("model.safetensors.index.json", True), ("pytorch_model.bin.index.json", False)):
        index = folder / index_name
        if index.is_file():
            try:
                names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, KeyError, json.JSONDecodeError):
                raise ModelLoadError(f"{index} is corrupt.") from None
            files = [folder / n for n in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ModelLoadError(f"{folder.name} is missing weight shards: {', '.join(missing[:3])}.")
            return files, safe
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"], True
    if (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"], False
    raise ModelLoadError(f"{folder} has no weights (model.safetensors or pytorch_model.bin).")


def _head_for(cfg: dict) -> tuple[str, Any]:
    """Pick (kind, auto class) from the config: causal LM, masked LM / base encoder, seq2seq."""
    import transformers
    from transformers.models.auto import modeling_auto as ma

    def names(mapping):
        out = set()
        for v in mapping.values():
            out.update(v if isinstance(v, (list, tuple)) else [v])
        return out

    causal = names(ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    masked = names(ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    seq2seq = names(ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if cfg.get("is_encoder_decoder") or any(a in seq2seq for a in archs):
        if model_type not in ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
            raise ModelLoadError(f"The lab cannot load {model_type!r} as an encoder-decoder language model.")
        return KIND_SEQ2SEQ, transformers.AutoModelForSeq2SeqLM
    if any(a in masked for a in archs) and model_type in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return KIND_ENCODER, transformers.AutoModelForMaskedLM
    if any(a in causal for a in archs) or (
        not archs and model_type in ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES
    ):
        return KIND_DECODER, transformers.AutoModelForCausalLM
    if not archs and model_type in ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return KIND_ENCODER, transformers.AutoModelForMaskedLM
    # The config names a head the lab does not drive (a bare encoder, a classifier):
    # load the base model, never a randomly initialised language-model head.
    if model_type in ma.MODEL_MAPPING_NAMES:
        return KIND_ENCODER, transformers.AutoModel
    raise ModelLoadError(f"The lab cannot load this architecture ({model_type}).")


# --- the loaded model -------------------------------------------------------------------

@dataclass
class ModelCard:
    """What the model panel and `tvlab info` show."""

    name: str
    ref: str
    path: str
    source: str
    kind: str
    model_type: str
    architecture: str
    layers: int
    decoder_layers: int
    heads: int
    kv_heads: int
    hidden: int
    vocab: int
    context: Optional[int]
    params: int
    param_bytes: int
    device: str
    dtype: str
    attn_implementation: str
    notes: list[str] = field(default_factory=list)
    device_map: dict[str, str] = field(default_factory=dict)   # module -> device, when split

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    card: ModelCard
    device: str
    dtype: str

    @property
    def kind(self) -> str:
        return self.card.kind

    @property
    def config(self):
        return self.model.config

    @contextlib.contextmanager
    def attention(self, impl: str) -> Iterator[None]:
        """Switch the attention implementation for a block (eager for captures)."""
        current = getattr(self.model.config, "_attn_implementation", None) or "eager"
        if current == impl:
            yield
            return
        self.model.set_attn_implementation(impl)
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)


def _cfg_get(cfg, *names, default=None):
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def describe(model, tokenizer, *, ref: str, path: Path, source: str, kind: str,
             device: str, dtype: str, notes: list[str]) -> ModelCard:
    cfg = model.config
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    layers = int(_cfg_get(text_cfg, "num_hidden_layers", "n_layer", "num_layers", "encoder_layers", default=0))
    dec_layers = int(_cfg_get(text_cfg, "num_decoder_layers", "decoder_layers", default=0)) if kind == KIND_SEQ2SEQ else 0
    if kind == KIND_SEQ2SEQ and not dec_layers:
        dec_layers = layers
    heads = int(_cfg_get(text_cfg, "num_attention_heads", "n_head", "num_heads", "encoder_attention_heads", default=0))
    kv_heads = int(_cfg_get(text_cfg, "num_key_value_heads", default=heads) or heads)
    hidden = int(_cfg_get(text_cfg, "hidden_size", "n_embd", "d_model", default=0))
    vocab = int(_cfg_get(text_cfg, "vocab_size", default=len(tokenizer)))
    context = _cfg_get(text_cfg, "max_position_embeddings", "n_positions", "n_ctx")
    if context is None:
        mml = getattr(tokenizer, "model_max_length", None)
        context = int(mml) if mml and mml < 1_000_000 else None
    params = sum(p.numel() for p in model.parameters())
    pbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    pbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    return ModelCard(
        name=ref[4:] if ref.startswith("zoo:") else path.name,
        ref=ref, path=str(path), source=source, kind=kind,
        model_type=str(getattr(cfg, "model_type", "")),
        architecture=type(model).__name__,
        layers=layers, decoder_layers=dec_layers, heads=heads, kv_heads=kv_heads,
        hidden=hidden, vocab=vocab, context=int(context) if context else None,
        params=int(params), param_bytes=int(pbytes), device=device, dtype=dtype,
        attn_implementation=str(getattr(cfg, "_attn_implementation", "") or "eager"),
        notes=list(notes),
        device_map={str(k): str(v) for k, v in (getattr(model, "hf_device_map", None) or {}).items()},
    )


def device_map_summary(device_map: dict[str, str]) -> dict[str, list[str]]:
    """``{device: [module, ...]}`` in model order: which layers live where."""
    out: dict[str, list[str]] = {}
    for module, dev in device_map.items():
        dev = f"cuda:{dev}" if dev.isdigit() else dev
        out.setdefault(dev, []).append(module or "(whole model)")
    return out


def _refused_pickle(err: BaseException) -> bool:
    """torch.load(weights_only=True) met something other than tensors in a pickle."""
    import pickle

    return isinstance(err, pickle.UnpicklingError) or "weights only load failed" in str(err).lower()


def unsafe_pickle_message(folder: Path, files: list[Path]) -> str:
    """What the file is and what to do; never "load it unsafely"."""
    names = ", ".join(f.name for f in files) or "its weights"
    return (f"{folder.name}: {names} is a pickle checkpoint that asks to run code when it is loaded, "
            "not only to read tensors, so the lab refused it. Convert it to safetensors on a machine "
            "you trust (load it there and save with save_pretrained(..., safe_serialization=True)), "
            "then open the converted folder.")


def inspect_folder(folder: Path) -> tuple[dict, str, Any, list[Path], bool]:
    """Everything that can be checked before loading: config, head, weights."""
    cfg = read_config(folder)
    _refuse_remote_code(folder, cfg)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = cfg.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(
            f"{folder.name}: the architecture {model_type!r} is not one this version of transformers "
            "knows, and the lab never runs a model folder's own code."
        )
    kind, auto_cls = _head_for(cfg)
    files, safe = weight_files(folder)
    if safe:
        for f in files:
            check_safetensors(f)
    return cfg, kind, auto_cls, files, safe


ACCELERATE_MISSING = ("Splitting a model across GPUs needs Hugging Face accelerate, an optional part of the lab: "
                      "pip install 'transformer-visual-lab[multi-gpu]' (or pip install accelerate), then load again.")


def _from_pretrained(auto_cls, folder: Path, kwargs: dict):
    """sdpa attention where the architecture has it, eager where it does not."""
    try:
        return auto_cls.from_pretrained(str(folder), attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as err:
        if "sdpa" not in str(err).lower() and "attn" not in str(err).lower():
            raise
        return auto_cls.from_pretrained(str(folder), attn_implementation="eager", **kwargs)


def load(ref: str, device: str = "cpu", dtype: str = "fp32", job: Optional[Job] = None,
         max_memory: Optional[dict] = None) -> LoadedModel:
    """Load a model and its tokenizer. Raises ModelLoadError/DeviceError with a clear message.

    ``device="split"`` spreads the model over the visible GPUs with accelerate
    (``device_map="auto"``), each GPU capped by ``max_memory`` (e.g. ``{0: "2GiB",
    1: "2GiB", "cpu": "30GiB"}``); the card's ``device_map`` says which layers live where.
    """
    job = Job.ensure(job)
    job.progress(0.02, "resolving")
    folder, source = resolve(ref)
    device, notes = choose_device(device, dtype)
    cfg, kind, auto_cls, files, safe = inspect_folder(folder)
    job.progress(0.1, "reading tokenizer")
    import torch
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as err:
        raise ModelLoadError(f"Could not load the tokenizer of {folder.name}: {first_line(err)}") from None
    job.progress(0.25, "reading weights")
    kwargs: dict[str, Any] = dict(
        local_files_only=True, trust_remote_code=False, dtype=torch_dtype(dtype),
        use_safetensors=safe,
    )
    if not safe:
        kwargs["weights_only"] = True
    if device == SPLIT:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise ModelLoadError(ACCELERATE_MISSING) from None
        kwargs["device_map"] = "auto"
        if max_memory:
            kwargs["max_memory"] = max_memory
    elif device != "cpu":
        kwargs["device_map"] = device     # weights go straight there: no second copy on the CPU
    try:
        with device_errors(device) if device not in ("cpu", SPLIT) else contextlib.nullcontext():
            model = _from_pretrained(auto_cls, folder, kwargs)
    except (ModelLoadError, DeviceError):
        raise
    except (torch.OutOfMemoryError, MemoryError):
        raise DeviceError("Out of memory while loading the weights; try fp16/bf16 or a smaller model.") from None
    except Exception as err:
        if not safe and _refused_pickle(err):
            raise ModelLoadError(unsafe_pickle_message(folder, files)) from None
        raise ModelLoadError(f"Could not load {folder.name}: {first_line(err)}") from None
    job.progress(0.8, f"loaded on {device}")
    model.eval()
    if device == SPLIT:
        first = next(iter(model.parameters())).device
        device = str(first) if first.type != "cpu" else "cpu"
        if not getattr(model, "hf_device_map", None):   # it all fitted on one device
            model.hf_device_map = {"": device}
        used = sorted({str(v) for v in model.hf_device_map.values()})
        notes.append(f"Split across {', '.join(used)} by accelerate (device_map='auto'); inputs go to {device}.")
    elif getattr(model, "hf_device_map", None) is not None:
        del model.hf_device_map           # one device: a plain model, as if moved with .to()
    card = describe(model, tokenizer, ref=ref, path=folder, source=source, kind=kind,
                    device=device, dtype=dtype, notes=notes)
    job.progress(1.0, "loaded")
    return LoadedModel(model=model, tokenizer=tokenizer, card=card, device=device, dtype=dtype)
