"""Where to intervene: the modules of each supported architecture, named explicitly.

For every stack of the model (``self``; or ``encoder``, ``decoder``, ``cross``) a
``Stack`` gives, per layer, the block (its input is the residual stream entering the
layer), the attention output projection (its input is the heads side by side, its output
the attention block's contribution) and the MLP block (its output is the MLP's
contribution). An architecture missing from ``ARCHITECTURES`` is refused with its name:
module names are never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lab.core.errors import InputError, LabError
from lab.core.models import LoadedModel


class UnsupportedArchitecture(LabError):
    """The model's modules are not ones the lab knows how to intervene on."""


@dataclass(frozen=True)
class Layout:
    """Attribute paths of one stack, relative to the base model and to each block."""
    blocks: str                  # the ModuleList of blocks, e.g. "h" or "encoder.layer"
    attn_out: str                # the attention output projection inside a block
    mlp: Optional[str]           # the MLP block (its output is the MLP's contribution)
    heads_key: tuple[str, ...]   # config fields holding the number of query heads


_DEC = ("num_attention_heads", "n_head", "num_heads")
_LLAMA = {"self": Layout("layers", "self_attn.o_proj", "mlp", _DEC)}
_BERT = {"self": Layout("encoder.layer", "attention.output.dense", "output.dense", _DEC)}
ARCHITECTURES: dict[str, dict[str, Layout]] = {
    "gpt2": {"self": Layout("h", "attn.c_proj", "mlp", _DEC)},
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA,
    "gpt_neox": {"self": Layout("layers", "attention.dense", "mlp", _DEC)},
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT,
    "t5": {"encoder": Layout("encoder.block", "layer.0.SelfAttention.o", "layer.1.DenseReluDense", ("num_heads",)),
           "decoder": Layout("decoder.block", "layer.0.SelfAttention.o", "layer.2.DenseReluDense", ("num_heads",)),
           "cross": Layout("decoder.block", "layer.1.EncDecAttention.o", None, ("num_heads",))},
    "bart": {"encoder": Layout("encoder.layers", "self_attn.out_proj", "fc2", ("encoder_attention_heads",)),
             "decoder": Layout("decoder.layers", "self_attn.out_proj", "fc2", ("decoder_attention_heads",)),
             "cross": Layout("decoder.layers", "encoder_attn.out_proj", None, ("decoder_attention_heads",))},
}

SITES = ("resid", "attn", "mlp")
SITE_LABELS = {"resid": "residual stream entering the layer", "attn": "attention block output",
               "mlp": "MLP block output"}


def _get(module, path: str):
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


@dataclass
class Stack:
    name: str
    blocks: list
    attn_out: list
    mlp: list                    # empty for a cross-attention stack (its MLP is the decoder's)
    heads: int
    head_dim: int
    conv1d: bool                 # GPT-2's Conv1D stores the weight as [in, out]

    @property
    def layers(self) -> int:
        return len(self.blocks)

    def module(self, site: str, layer: int):
        if site == "resid":
            return self.blocks[layer]
        if site == "attn":
            return self.attn_out[layer]
        if site == "mlp":
            if not self.mlp:
                raise InputError(f"The {self.name} stack has no MLP of its own; choose the decoder stack.")
            return self.mlp[layer]
        raise InputError(f"Unknown site {site!r}; choose one of {', '.join(SITES)}.")


def stacks(lm: LoadedModel) -> dict[str, Stack]:
    """Every stack of ``lm`` with its modules (cached on the model)."""
    model = lm.model
    cached = model.__dict__.get("_tvlab_sites")
    if cached is not None:
        return cached
    mtype = str(getattr(model.config, "model_type", ""))
    layout = ARCHITECTURES.get(mtype)
    if layout is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedArchitecture(
            f"Interventions do not support the {mtype or type(model).__name__!r} architecture "
            f"({type(model).__name__}) yet; supported: {known}.")
    base = model.base_model
    cfg = model.config
    out: dict[str, Stack] = {}
    for name, lay in layout.items():
        try:
            blocks = list(_get(base, lay.blocks))
            attn = [_get(b, lay.attn_out) for b in blocks]
            mlp = [_get(b, lay.mlp) for b in blocks] if lay.mlp else []
        except (AttributeError, IndexError, TypeError):
            raise UnsupportedArchitecture(
                f"{type(model).__name__} ({mtype}) does not have the modules the lab expects "
                f"({lay.blocks}.N.{lay.attn_out}); this variant is not supported.") from None
        heads = next((int(getattr(cfg, k)) for k in lay.heads_key if getattr(cfg, k, None)), 0)
        width = _in_features(attn[0])
        if not heads or width % heads:
            raise UnsupportedArchitecture(f"Cannot split the {name} attention of {mtype} into heads "
                                          f"({width} inputs, {heads} heads).")
        out[name] = Stack(name, blocks, attn, mlp, heads, width // heads, type(attn[0]).__name__ == "Conv1D")
    model.__dict__["_tvlab_sites"] = out
    return out


def _in_features(proj) -> int:
    if hasattr(proj, "in_features"):
        return int(proj.in_features)
    return int(proj.weight.shape[0])        # Conv1D: weight [in, out]


def stack(lm: LoadedModel, name: Optional[str]) -> Stack:
    """One stack by name; ``None`` means the model's first (``self`` or ``encoder``)."""
    all_ = stacks(lm)
    if name is None:
        return next(iter(all_.values()))
    if name not in all_:
        raise InputError(f"{lm.card.name} has no {name!r} stack; it has {', '.join(all_)}.")
    return all_[name]
