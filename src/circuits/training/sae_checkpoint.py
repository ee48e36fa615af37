"""SAE checkpoints in SAELens's on-disk layout: a folder with ``cfg.json`` and ``sae_weights.safetensors``.

``sae_weights.safetensors`` holds ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]`` (float32) with the input normalisation folded in (SAELens's
``fold_activation_norm_scaling_factor``), so ``cfg.json`` says ``normalize_activations: "none"`` and
SAELens (``SAE.load_from_disk(folder)``) reads raw activations. ``cfg.json`` is the flat
pre-6.0 SAELens layout, which every SAELens release reads (6.x converts it on load): ``architecture``
(``"standard"`` or ``"topk"``), ``d_in``, ``d_sae``, ``dtype``, ``device``, ``model_name``,
``hook_name``, ``hook_layer``, ``hook_head_index``, ``activation_fn_str`` (``"relu"`` / ``"topk"``),
``activation_fn_kwargs`` and ``k`` (TopK), ``apply_b_dec_to_input: true``,
``finetuning_scaling_factor: false``, ``normalize_activations: "none"``, ``context_size``,
``prepend_bos``; our own config goes under ``"circuits"`` (SAELens ignores unknown keys).

Loading checks the file against its config: every tensor present, no extra ones, each of the
shape ``cfg.json`` implies, floating point; anything else raises ``ValueError`` naming the tensor,
the shape found and the shape expected. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from circuits.model.sae import ARCHITECTURES, SAEConfig, SparseAutoencoder

__all__ = ["save_sae", "load_sae", "CFG_FILENAME", "WEIGHTS_FILENAME", "SAELENS_TENSORS"]

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
SAELENS_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


def saelens_cfg(sae: SparseAutoencoder) -> dict:
    """The ``cfg.json`` dict of ``sae`` (see the module docstring)."""
    c = sae.config
    layer = re.match(r"blocks\.(\d+)\.", c.hook_name)
    cfg = {
        "architecture": c.architecture,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "model_name": c.model_name,
        "hook_name": c.hook_name,
        "hook_layer": int(layer.group(1)) if layer else 0,
        "hook_head_index": None,
        "activation_fn_str": "topk" if c.architecture == "topk" else "relu",
        "activation_fn_kwargs": {"k": c.k} if c.architecture == "topk" else {},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "normalize_activations": "none",
        "context_size": c.context_size,
        "prepend_bos": True,
        "circuits": {"sae_config": c.to_dict(), "input_scale_folded": float(sae.input_scale)},
    }
    if c.architecture == "topk":
        cfg["k"] = c.k
    return cfg


def save_sae(sae: SparseAutoencoder, folder: str | os.PathLike) -> Path:
    """Write ``sae`` to ``folder`` (created if needed) as ``cfg.json`` + ``sae_weights.safetensors``; returns the folder."""
    if not isinstance(sae, SparseAutoencoder):
        raise TypeError(f"save_sae expects a SparseAutoencoder, got {type(sae).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: t.to(torch.float32).cpu().contiguous() for name, t in sae.folded_weights().items()}
    save_file(weights, str(folder / WEIGHTS_FILENAME), metadata={"format": "pt"})
    (folder / CFG_FILENAME).write_text(json.dumps(saelens_cfg(sae), indent=2) + "\n", encoding="utf-8")
    return folder


def load_sae(folder: str | os.PathLike) -> SparseAutoencoder:
    """Read an SAE written by :func:`save_sae` (or by SAELens, for ``"standard"``/``"topk"`` SAEs without runtime normalisation).

    The weights come back with the input normalisation folded in (``input_scale = 1``): the
    same function of the raw activations as the SAE that was saved.
    """
    folder = Path(folder)
    cfg_path, weights_path = folder / CFG_FILENAME, folder / WEIGHTS_FILENAME
    for path in (cfg_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: an SAE folder holds {CFG_FILENAME} and {WEIGHTS_FILENAME} (save_sae writes both)")
    raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    sae = SparseAutoencoder(config_from_saelens(raw, cfg_path))
    tensors = _read_tensors(weights_path)
    _check_shapes(tensors, sae, weights_path)
    with torch.no_grad():
        for name in SAELENS_TENSORS:
            getattr(sae, name).copy_(tensors[name].to(torch.float32))
    return sae.eval()


def config_from_saelens(raw: dict, where: Path | str = CFG_FILENAME) -> SAEConfig:
    """An :class:`SAEConfig` from a SAELens ``cfg.json`` dict; refuses what this SAE cannot compute."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("d_in", "d_sae") if key not in raw]
    if missing:
        raise ValueError(f"{where}: missing {missing}; a SAELens cfg.json names d_in and d_sae")
    architecture = raw.get("architecture", "standard")
    if architecture == "standard" and raw.get("activation_fn_str", raw.get("activation_fn", "relu")) == "topk":
        architecture = "topk"  # SAELens < 6 wrote TopK SAEs as "standard" with a topk activation
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{where}: architecture {architecture!r} is not supported (supported: {ARCHITECTURES})")
    if raw.get("normalize_activations", "none") not in ("none", None, False):
        raise ValueError(f"{where}: normalize_activations={raw['normalize_activations']!r}; fold the scaling into the weights first (SAELens fold_activation_norm_scaling_factor)")
    if raw.get("apply_b_dec_to_input", True) is not True:
        raise ValueError(f"{where}: apply_b_dec_to_input=false is not supported (this SAE subtracts b_dec before encoding)")
    meta = raw.get("metadata") or raw.get("meta") or {}
    k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k")) if architecture == "topk" else None
    ours = (raw.get("circuits") or {}).get("sae_config") or {}
    try:
        return SAEConfig(
            d_in=raw["d_in"], d_sae=raw["d_sae"], architecture=architecture, k=k, seed=ours.get("seed", 0),
            hook_name=raw.get("hook_name") or meta.get("hook_name") or "", model_name=raw.get("model_name") or meta.get("model_name") or "",
            context_size=raw.get("context_size", meta.get("context_size")),
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def _check_shapes(tensors: dict[str, torch.Tensor], sae: SparseAutoencoder, path: Path) -> None:
    c = sae.config
    expected = {"W_enc": (c.d_in, c.d_sae), "b_enc": (c.d_sae,), "W_dec": (c.d_sae, c.d_in), "b_dec": (c.d_in,)}
    missing = [name for name in expected if name not in tensors]
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: tensors {sorted(tensors)} do not match a {c.architecture!r} SAE (missing {missing}, unexpected {extra})")
    for name, shape in expected.items():
        found = tuple(tensors[name].shape)
        if found != shape:
            raise ValueError(
                f"{path}: {name} has shape {found}, but cfg.json (d_in={c.d_in}, d_sae={c.d_sae}) implies {shape}; "
                "the weights and the config belong to different SAEs"
            )
        if not tensors[name].is_floating_point():
            raise ValueError(f"{path}: {name} has dtype {tensors[name].dtype}; SAE weights are floating point")
