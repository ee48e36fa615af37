"""Hugging Face checkpoints in and out: ``load_hf(folder)`` and ``export_hf(model, folder)``.

Local folders only (``config.json`` + ``model.safetensors``, or shards with
``model.safetensors.index.json``); safetensors only, never pickle. Supported:

============================  ======================================================  ==========
architecture                  what it becomes                                          direction
============================  ======================================================  ==========
``GPT2LMHeadModel``           pre-norm LayerNorm, learned positions, GELU MLP          in and out
``LlamaForCausalLM``          pre-norm RMSNorm, rotary, grouped-query attn, SwiGLU     in and out
``BertModel``                 post-norm LayerNorm, bidirectional, token types          in
``ViTForImageClassification`` patches, class token, bidirectional, ``"cls"`` head      in and out
``ViTModel``                  the same without a head (identity unembedding)           in and out
============================  ======================================================  ==========

(``GPT2Model`` and ``LlamaModel``, the head-less variants, load with the unembedding tied to
the token embeddings.) Anything else, or a config option the model cannot reproduce exactly
(rope scaling, cross-attention, relative positions, unscaled attention, ...), raises
:class:`UnsupportedCheckpointError` naming the option. Export checks the model's config first
and raises :class:`UnsupportedExportError` listing every field that prevents it.

Each importer module (``gpt2``, ``llama``, ``bert``) holds the name table for its architecture.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from tokenizers import Tokenizer as RustTokenizer

from circuits.atomic import atomic_write_json, atomic_write_text
from circuits.hf import bert, gpt2, llama, vit
from circuits.hf.checkpoint import Weights, checkpoint_folder, read_config, read_tensors, write_checkpoint
from circuits.hf.common import UnsupportedCheckpointError, UnsupportedExportError
from circuits.hf.tokenizer import HFTokenizer
from circuits.model import Transformer
from circuits.model.finite import check_finite

__all__ = ["load_hf", "export_hf", "load_hf_tokenizer", "HFTokenizer", "UnsupportedCheckpointError", "UnsupportedExportError"]

#: architecture -> (importer module, name prefix of its body's tensors)
_IMPORTERS: dict[str, tuple[ModuleType, str]] = {
    **{name: (gpt2, "transformer.") for name in gpt2.ARCHITECTURES},
    **{name: (llama, "model.") for name in llama.ARCHITECTURES},
    **{name: (bert, "bert.") for name in bert.ARCHITECTURES},
    **{name: (vit, "vit.") for name in vit.ARCHITECTURES},
}
_DEFAULT_FOR_MODEL_TYPE = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "bert": "BertModel", "vit": "ViTModel"}
_EXPORTERS: dict[str, ModuleType] = {"gpt2": gpt2, "llama": llama, "vit": vit}
_EXPORT_NAMES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "vit": "ViTForImageClassification / ViTModel"}


def load_hf(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32) -> Transformer:
    """Load a local Hugging Face checkpoint folder into a :class:`circuits.Transformer` (in eval mode).

    The weights are mapped exactly (see each architecture's table in ``circuits.hf.gpt2``,
    ``llama``, ``bert``); every tensor of the checkpoint must be used or be a known non-weight
    (BERT's pooler, mask buffers), and every weight must be finite (``ValueError`` naming the
    parameter otherwise; a truncated file also raises ``ValueError``). When the folder has a
    ``tokenizer.json`` it is attached as ``model.tokenizer`` (an :class:`HFTokenizer`), so
    ``model.to_tokens("text")`` works.
    """
    folder = checkpoint_folder(path)
    hf_config = read_config(folder)
    architecture = _architecture(hf_config, folder)
    module, prefix = _IMPORTERS[architecture]
    cfg = module.config_from_hf(hf_config, architecture)
    weights = Weights(read_tensors(folder), architecture, prefixes=(prefix,), ignore=module.ignored_tensors())
    state = module.state_from_hf(weights, cfg)
    weights.finish()
    model = Transformer(cfg)
    model.load_state_dict(state, strict=True)
    check_finite(model, source=folder)
    model.tokenizer = HFTokenizer.from_folder(folder) if (folder / "tokenizer.json").is_file() else None
    return model.to(dtype).eval()


def load_hf_tokenizer(path: str | os.PathLike) -> HFTokenizer:
    """The ``tokenizer.json`` of a checkpoint folder as an :class:`HFTokenizer`."""
    return HFTokenizer.from_folder(path)


def _architecture(hf_config: dict[str, Any], folder: Path) -> str:
    names = hf_config.get("architectures") or []
    if not names and hf_config.get("model_type") in _DEFAULT_FOR_MODEL_TYPE:
        names = [_DEFAULT_FOR_MODEL_TYPE[hf_config["model_type"]]]
    if len(names) != 1 or names[0] not in _IMPORTERS:
        raise UnsupportedCheckpointError(
            f"{folder / 'config.json'} declares architectures={names} (model_type={hf_config.get('model_type')!r}); "
            f"circuits.load_hf supports {sorted(_IMPORTERS)}"
        )
    return names[0]


# ---- export ----------------------------------------------------------------------------------
def export_problems(model: Transformer, architecture: Literal["gpt2", "llama", "vit"]) -> list[str]:
    """The config fields that keep ``model`` from being exported as ``architecture`` (empty if none)."""
    if architecture not in _EXPORTERS:
        raise ValueError(f"architecture={architecture!r} is not one of {sorted(_EXPORTERS)}")
    cfg = model.config
    problems = []
    if architecture != "vit" and (cfg.input != "tokens" or cfg.n_classes is not None):
        problems.append(f"input={cfg.input!r}, n_classes={cfg.n_classes} (a causal LM reads tokens and predicts every next token)")
    return problems + _EXPORTERS[architecture].export_problems(cfg)


def export_hf(
    model: Transformer,
    path: str | os.PathLike,
    *,
    architecture: Literal["auto", "gpt2", "llama", "vit"] = "auto",
    tokenizer: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a Hugging Face checkpoint folder that ``transformers`` and TransformerLens's
    ``TransformerBridge.boot_transformers(folder)`` open with the same logits.

    ``architecture="auto"`` picks GPT-2, LLaMA or ViT from the config. A config either cannot express
    raises :class:`UnsupportedExportError` naming each offending field. Parameters the target has
    no place for (``b_U``; a LLaMA gate bias) are written only when exactly zero, else the export
    raises. ``tokenizer`` (default ``model.tokenizer``; a :class:`circuits.Tokenizer` or
    :class:`HFTokenizer`) is written as ``tokenizer.json`` + ``tokenizer_config.json`` so the
    folder is self-contained. The folder appears complete or not at all; an existing one is
    replaced only with ``overwrite=True``.
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"export_hf expects a circuits.Transformer, got {type(model).__name__}")
    target = _pick_architecture(model, architecture)
    module = _EXPORTERS[target]
    tokenizer = model.tokenizer if tokenizer is None else tokenizer
    special = _tokenizer_specials(tokenizer) if tokenizer is not None else {}
    bos_id = special.get("bos_id")
    hf_config = module.config_to_hf(model.config, bos_id, bos_id)
    tensors = module.state_to_hf(model)

    folder = Path(path)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True to replace it, or choose a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}.", dir=folder.parent))
    try:
        write_checkpoint(tmp, hf_config, tensors)
        if tokenizer is not None:
            atomic_write_text(tmp / "tokenizer.json", tokenizer.to_json())
            atomic_write_json(tmp / "tokenizer_config.json", special["config"])
        if folder.exists():
            old = folder.with_name(f".tmp-old-{folder.name}.{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _pick_architecture(model: Transformer, architecture: str) -> str:
    if architecture != "auto":
        problems = export_problems(model, architecture)  # validates the name
        if problems:
            raise UnsupportedExportError(f"cannot export to {_EXPORT_NAMES[architecture]} exactly: " + "; ".join(problems))
        return architecture
    found = {name: export_problems(model, name) for name in _EXPORTERS}
    for name, problems in found.items():
        if not problems:
            return name
    detail = " | ".join(f"{_EXPORT_NAMES[name]}: " + "; ".join(problems) for name, problems in found.items())
    raise UnsupportedExportError(f"this model matches no exportable architecture exactly. {detail}")


def _tokenizer_specials(tokenizer: Any) -> dict[str, Any]:
    """The BOS token of our tokenizer (or a wrapped checkpoint tokenizer) and a tokenizer_config.json for it."""
    if not hasattr(tokenizer, "to_json") or not hasattr(tokenizer, "bos_id"):
        raise TypeError(
            f"tokenizer must be a circuits.Tokenizer or circuits.HFTokenizer (with to_json() and bos_id), got {type(tokenizer).__name__}"
        )
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    bos_id = tokenizer.bos_id
    if bos_id is not None:
        bos = RustTokenizer.from_str(tokenizer.to_json()).id_to_token(bos_id)
        config.update(bos_token=bos, eos_token=bos, add_bos_token=True)
    return {"bos_id": bos_id, "config": config}
