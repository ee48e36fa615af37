"""Vision transformers (``ViTForImageClassification``, ``ViTModel``) <-> ``circuits.Transformer`` (in and out).

ViT is pre-norm LayerNorm with a bidirectional mask, GELU MLPs, a class token and learned
positions over the patches (``input="patches"``, ``class_token=True``). The patch embedding is a
stride-``patch_size`` convolution, i.e. a linear map of each flattened patch (channel, row,
column order), which is our ``embed.W_E [n_channels * patch_size**2, d_model]``. So
``blocks.{l}.hook_resid_post`` is Hugging Face's ``hidden_states[l + 1]``.

==================================================  ============================================
Hugging Face (``vit.`` prefix stripped)             circuits
==================================================  ============================================
``embeddings.cls_token [1, 1, d]``                  ``embed.W_cls [d]``
``embeddings.patch_embeddings.projection``          ``embed.W_E`` (conv weight flattened,
                                                    transposed), ``embed.b_E``
``embeddings.position_embeddings [1, n_ctx, d]``    ``pos_embed.W_pos``
``encoder.layer.{l}.layernorm_before``              ``ln1``
``encoder.layer.{l}.attention.attention.query``...  ``W_Q``/``W_K``/``W_V`` (+ biases)
``encoder.layer.{l}.attention.output.dense``        ``W_O``, ``b_O``
``encoder.layer.{l}.layernorm_after``               ``ln2``
``encoder.layer.{l}.intermediate.dense``            ``W_in``, ``b_in``
``encoder.layer.{l}.output.dense``                  ``W_out``, ``b_out``
``layernorm``                                       ``ln_final``
``classifier`` (``ViTForImageClassification``)      ``unembed.W_U``/``b_U``; ``n_classes``,
                                                    ``pool="cls"`` (the class token's position)
``pooler.dense`` (``ViTModel``)                     not loaded (like BERT's pooler)
==================================================  ============================================

``ViTModel`` has no head: it loads with ``d_vocab_out = d_model`` and an identity unembedding
(``W_U = I``, ``b_U = 0``), so the model's "logits" ``[batch, pos, d_model]`` are Hugging Face's
``last_hidden_state``. Export writes ``ViTForImageClassification`` (a model with a ``"cls"`` head)
or ``ViTModel`` (an identity unembedding), with the legacy tensor names every ``transformers``
version reads.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from torch import Tensor

from circuits.config import TransformerConfig
from circuits.hf.checkpoint import Weights
from circuits.hf.common import UnsupportedCheckpointError, UnsupportedExportError, get_activation, get_float, get_heads, get_int, require, zeros_like_or

ARCHITECTURES = ("ViTForImageClassification", "ViTModel")

_ACT_TO_HF = {"gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "silu": "silu"}


def _square(hf: dict[str, Any], arch: str, key: str) -> int:
    value = hf.get(key)
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedCheckpointError(f"{arch} config.json has {key}={value!r}; circuits supports square images and patches (one int)")
    return value


def config_from_hf(hf: dict[str, Any], architecture: str) -> TransformerConfig:
    arch = architecture
    require(hf, arch, "qkv_bias", (True, None), "our model has biases on all projections or none", True)
    act_fn = get_activation(hf, arch, "hidden_act", "gelu")
    d_model, n_heads = get_heads(hf, arch, "hidden_size", "num_attention_heads")
    image_size, patch_size = _square(hf, arch, "image_size"), _square(hf, arch, "patch_size")
    if image_size % patch_size:
        raise UnsupportedCheckpointError(f"{arch} config.json: image_size={image_size} is not divisible by patch_size={patch_size}")
    n_channels = get_int(hf, arch, "num_channels", 3)
    head: dict[str, Any] = {"d_vocab_out": d_model}  # ViTModel: identity unembedding (logits = last_hidden_state)
    if arch == "ViTForImageClassification":
        labels = hf.get("id2label") or {}
        head = {"n_classes": get_int(hf, arch, "num_labels", len(labels) or 2), "pool": "cls"}
    return TransformerConfig(
        n_layers=get_int(hf, arch, "num_hidden_layers"), d_model=d_model, n_heads=n_heads,
        d_vocab=n_channels * patch_size**2, n_ctx=(image_size // patch_size) ** 2 + 1,
        d_mlp=get_int(hf, arch, "intermediate_size"), act_fn=act_fn, normalization="layernorm",
        norm_position="pre", norm_eps=get_float(hf, arch, "layer_norm_eps", 1e-12), positional="learned", mask="bidirectional",
        input="patches", image_size=image_size, patch_size=patch_size, n_channels=n_channels, class_token=True, **head,
    )


def ignored_tensors() -> list[str]:
    """``ViTModel``'s pooler (dense + tanh on the class token; not part of the classifier's path)."""
    return [r"pooler\.dense\.(weight|bias)"]


def state_from_hf(w: Weights, cfg: TransformerConfig) -> dict[str, Tensor]:
    d, h, m, p = cfg.d_model, cfg.n_heads, cfg.d_mlp_, cfg.patch_size
    conv = w.take("embeddings.patch_embeddings.projection.weight", (d, cfg.n_channels, p, p))
    state = {
        "embed.W_E": einops.rearrange(conv, "d_model c ph pw -> (c ph pw) d_model"),
        "embed.b_E": w.take("embeddings.patch_embeddings.projection.bias", (d,)),
        "embed.W_cls": w.take("embeddings.cls_token", (1, 1, d)).reshape(d),
        "pos_embed.W_pos": w.take("embeddings.position_embeddings", (1, cfg.n_ctx, d)).reshape(cfg.n_ctx, d),
        "ln_final.w": w.take("layernorm.weight", (d,)),
        "ln_final.b": w.take("layernorm.bias", (d,)),
    }
    for l in range(cfg.n_layers):
        state.update(_block_from_hf(w, f"encoder.layer.{l}.", f"blocks.{l}.", d, h, m))
    if cfg.n_classes is not None:
        state["unembed.W_U"] = w.take("classifier.weight", (cfg.n_classes, d)).T
        state["unembed.b_U"] = w.take("classifier.bias", (cfg.n_classes,))
    else:
        state["unembed.W_U"], state["unembed.b_U"] = torch.eye(d), torch.zeros(d)
    return state


def _block_from_hf(w: Weights, p: str, q: str, d: int, h: int, m: int) -> dict[str, Tensor]:
    state = {}
    for name, theirs in (("Q", "query"), ("K", "key"), ("V", "value")):
        state[q + f"attn.W_{name}"] = einops.rearrange(
            w.take(p + f"attention.attention.{theirs}.weight", (d, d)), "(head d_head) d_model -> head d_model d_head", head=h
        )
        state[q + f"attn.b_{name}"] = einops.rearrange(w.take(p + f"attention.attention.{theirs}.bias", (d,)), "(head d_head) -> head d_head", head=h)
    state[q + "attn.W_O"] = einops.rearrange(w.take(p + "attention.output.dense.weight", (d, d)), "d_model (head d_head) -> head d_head d_model", head=h)
    state[q + "attn.b_O"] = w.take(p + "attention.output.dense.bias", (d,))
    for ours, theirs in (("ln1", "layernorm_before"), ("ln2", "layernorm_after")):
        state[q + f"{ours}.w"] = w.take(p + f"{theirs}.weight", (d,))
        state[q + f"{ours}.b"] = w.take(p + f"{theirs}.bias", (d,))
    state[q + "mlp.W_in"] = w.take(p + "intermediate.dense.weight", (m, d)).T
    state[q + "mlp.b_in"] = w.take(p + "intermediate.dense.bias", (m,))
    state[q + "mlp.W_out"] = w.take(p + "output.dense.weight", (d, m)).T
    state[q + "mlp.b_out"] = w.take(p + "output.dense.bias", (d,))
    return state


# ---- export ----------------------------------------------------------------------------------
def export_problems(cfg: TransformerConfig) -> list[str]:
    """Config fields that keep a model from being a Hugging Face ViT (empty when it can be exported exactly)."""
    problems = []
    if cfg.input != "patches" or not cfg.class_token:
        problems.append(f"input={cfg.input!r}, class_token={cfg.class_token} (ViT reads patches and has a class token)")
    if cfg.normalization != "layernorm" or cfg.norm_position != "pre":
        problems.append(f"normalization={cfg.normalization!r}, norm_position={cfg.norm_position!r} (ViT is pre-norm LayerNorm)")
    if cfg.positional != "learned":
        problems.append(f"positional={cfg.positional!r} (ViT learns one position per patch)")
    if cfg.act_fn not in _ACT_TO_HF:
        problems.append(f"act_fn={cfg.act_fn!r} (ViT's MLP is not gated; use one of {sorted(_ACT_TO_HF)})")
    if cfg.n_heads * cfg.d_head_ != cfg.d_model or cfg.n_kv_heads_ != cfg.n_heads:
        problems.append(f"d_head={cfg.d_head_}, n_kv_heads={cfg.n_kv_heads} (ViT: n_heads * d_head = d_model, no grouped-query attention)")
    if cfg.attn_only or cfg.n_layers == 0 or cfg.smear_key or not cfg.use_bias:
        problems.append("attn_only, n_layers=0, smear_key or use_bias=False (every ViT block has an MLP, biases, plain keys)")
    if cfg.n_classes is not None and cfg.pool != "cls":
        problems.append(f"pool={cfg.pool!r} (ViTForImageClassification reads the class token: pool='cls')")
    if cfg.n_classes is None and cfg.d_vocab_out_ != cfg.d_model:
        problems.append(f"no classification head and d_vocab_out={cfg.d_vocab_out} (a ViTModel export needs the identity unembedding)")
    return problems


def config_to_hf(cfg: TransformerConfig, bos_id: int | None = None, eos_id: int | None = None) -> dict[str, Any]:
    config = {
        "architectures": ["ViTForImageClassification" if cfg.n_classes is not None else "ViTModel"],
        "model_type": "vit", "hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "intermediate_size": cfg.d_mlp_, "hidden_act": _ACT_TO_HF[cfg.act_fn], "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "layer_norm_eps": cfg.norm_eps, "image_size": cfg.image_size,
        "patch_size": cfg.patch_size, "num_channels": cfg.n_channels, "qkv_bias": True, "initializer_range": cfg.init_range_,
    }
    if cfg.n_classes is not None:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(cfg.n_classes)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(cfg.n_classes)}
    return config


def state_to_hf(model: Any) -> dict[str, Tensor]:
    cfg = model.config
    d, p = cfg.d_model, cfg.patch_size
    body = "vit." if cfg.n_classes is not None else ""
    if cfg.n_classes is None and not torch.equal(model.unembed.W_U.detach().cpu(), torch.eye(d)):
        raise UnsupportedExportError("W_U is not the identity, but a ViTModel export has no head; give the model n_classes and pool='cls'")
    tensors = {
        "embeddings.cls_token": model.embed.W_cls.detach().reshape(1, 1, d),
        "embeddings.patch_embeddings.projection.weight": einops.rearrange(
            model.embed.W_E.detach(), "(c ph pw) d_model -> d_model c ph pw", c=cfg.n_channels, ph=p, pw=p
        ),
        "embeddings.patch_embeddings.projection.bias": model.embed.b_E.detach(),
        "embeddings.position_embeddings": model.pos_embed.W_pos.detach().reshape(1, cfg.n_ctx, d),
        "layernorm.weight": model.ln_final.w.detach(),
        "layernorm.bias": model.ln_final.b.detach(),
    }
    for l, block in enumerate(model.blocks):
        tensors.update(_block_to_hf(block, f"encoder.layer.{l}."))
    tensors = {body + name: tensor for name, tensor in tensors.items()}
    if cfg.n_classes is not None:
        tensors["classifier.weight"] = model.unembed.W_U.detach().T
        tensors["classifier.bias"] = zeros_like_or(model.unembed.b_U, (cfg.n_classes,), model.unembed.W_U)
    return tensors


def _block_to_hf(block: Any, p: str) -> dict[str, Tensor]:
    attn, tensors = block.attn, {}
    for name, theirs in (("Q", "query"), ("K", "key"), ("V", "value")):
        tensors[p + f"attention.attention.{theirs}.weight"] = einops.rearrange(
            getattr(attn, f"W_{name}").detach(), "head d_model d_head -> (head d_head) d_model"
        )
        tensors[p + f"attention.attention.{theirs}.bias"] = einops.rearrange(getattr(attn, f"b_{name}").detach(), "head d_head -> (head d_head)")
    tensors[p + "attention.output.dense.weight"] = einops.rearrange(attn.W_O.detach(), "head d_head d_model -> d_model (head d_head)")
    tensors[p + "attention.output.dense.bias"] = attn.b_O.detach()
    for ours, theirs in (("ln1", "layernorm_before"), ("ln2", "layernorm_after")):
        tensors[p + f"{theirs}.weight"] = getattr(block, ours).w.detach()
        tensors[p + f"{theirs}.bias"] = getattr(block, ours).b.detach()
    tensors[p + "intermediate.dense.weight"] = block.mlp.W_in.detach().T
    tensors[p + "intermediate.dense.bias"] = block.mlp.b_in.detach()
    tensors[p + "output.dense.weight"] = block.mlp.W_out.detach().T
    tensors[p + "output.dense.bias"] = block.mlp.b_out.detach()
    return tensors
