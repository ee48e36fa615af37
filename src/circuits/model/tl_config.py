"""The one adapter between our config and TransformerLens's tools.

TransformerLens utilities (``ActivationCache``, ``patching``, ``head_detector``,
``SVDInterpreter``) read ``model.cfg.<name>`` using HookedTransformerConfig's attribute names.
:class:`TLConfigView` answers those names from the model's :class:`TransformerConfig` and its
parameters, so there is no second config to keep in sync. Any other attribute falls through to
the TransformerConfig (``model.cfg.d_model`` works as users of TransformerLens expect).

=========================== ===================================================
TransformerLens name        our value
=========================== ===================================================
``normalization_type``      ``"LN"`` / ``"RMS"`` / ``None`` (pre-norm only; post-norm
                            blocks are not TransformerLens's convention, so ``None``)
``positional_embedding_type`` the scheme's ``tl_name``: ``"standard"`` (learned, sinusoidal),
                            ``"shortformer"``, ``"rotary"``, ``"alibi"``, ``"none"``
``n_key_value_heads``       ``n_kv_heads`` (``None`` without grouping)
``d_head`` / ``d_mlp`` / ``d_vocab_out`` / ``rotary_dim``  resolved values
``device`` / ``dtype``      of the model's parameters now
``final_rms``               True for RMSNorm models
``gated_mlp``               True for SwiGLU
``use_attn_result``         True: ``hook_result`` fires whenever something listens
``use_split_qkv_input`` / ``use_hook_mlp_in`` / ``parallel_attn_mlp``  False
``n_devices``               1
``default_prepend_bos``     True (our tokenizers prepend BOS)
=========================== ===================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from circuits.model.transformer import Transformer

class TLConfigView:
    """Read-only view of a model's config under TransformerLens attribute names."""

    def __init__(self, model: "Transformer"):
        object.__setattr__(self, "_model", model)

    def __getattr__(self, name: str) -> Any:
        model = object.__getattribute__(self, "_model")
        if name in _TL_NAMES:
            return _TL_NAMES[name](model, model.config)
        return getattr(model.config, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"model.cfg is a read-only view for TransformerLens tools; build a new model from "
            f"model.config.replace({name}=...) instead of setting cfg.{name}"
        )

    def __repr__(self) -> str:
        return f"TLConfigView({object.__getattribute__(self, '_model').config!r})"


_TL_NAMES: dict[str, Any] = {
    "normalization_type": lambda model, cfg: (
        {"layernorm": "LN", "rmsnorm": "RMS"}.get(cfg.normalization) if cfg.norm_position == "pre" else None
    ),
    "positional_embedding_type": lambda model, cfg: model.positional.tl_name,
    "n_key_value_heads": lambda model, cfg: cfg.n_kv_heads,
    "d_head": lambda model, cfg: cfg.d_head_,
    "d_mlp": lambda model, cfg: None if cfg.attn_only else cfg.d_mlp_,
    "d_vocab_out": lambda model, cfg: cfg.d_vocab_out_,
    "rotary_dim": lambda model, cfg: cfg.rotary_dim_ if model.positional.rotates_qk else None,
    "device": lambda model, cfg: _first_param(model).device,
    "dtype": lambda model, cfg: _first_param(model).dtype,
    "final_rms": lambda model, cfg: cfg.normalization == "rmsnorm",
    "gated_mlp": lambda model, cfg: cfg.act_fn == "swiglu",
    "use_attn_result": lambda model, cfg: True,
    "use_split_qkv_input": lambda model, cfg: False,
    "use_hook_mlp_in": lambda model, cfg: False,
    "use_attn_in": lambda model, cfg: False,
    "parallel_attn_mlp": lambda model, cfg: False,
    "n_devices": lambda model, cfg: 1,
    "default_prepend_bos": lambda model, cfg: True,
    "tokenizer_prepends_bos": lambda model, cfg: True,
    "original_architecture": lambda model, cfg: "circuits.Transformer",
    "model_name": lambda model, cfg: "circuits.Transformer",
}


def _first_param(model: torch.nn.Module) -> torch.Tensor:
    for p in model.parameters():
        return p
    for b in model.buffers():
        return b
    return torch.empty(0)
