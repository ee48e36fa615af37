"""LLaMA (``LlamaForCausalLM``) <-> ``circuits.Transformer``: RMSNorm, rotary, grouped-query attention, SwiGLU.

``nn.Linear`` weights are ``[out, in]``, the transpose of our orientation.

=========================================  ===================================================
Hugging Face (after the ``model.`` prefix)  circuits
=========================================  ===================================================
``embed_tokens.weight [V, d]``             ``embed.W_E``
``layers.{l}.input_layernorm.weight``      ``blocks.{l}.ln1.w``
``layers.{l}.self_attn.q_proj [h*e, d]``   ``W_Q [head, d_model, d_head]`` (``k_proj``/``v_proj``: ``kv_head``)
``layers.{l}.self_attn.o_proj [d, h*e]``   ``W_O [head, d_head, d_model]``
``layers.{l}.post_attention_layernorm``    ``blocks.{l}.ln2.w``
``layers.{l}.mlp.gate_proj``/``up_proj``   ``W_gate`` / ``W_in`` ``[d_model, d_mlp]``
``layers.{l}.mlp.down_proj``               ``W_out [d_mlp, d_model]``
``norm.weight``                            ``ln_final.w``
``lm_head.weight [V, d]``                  ``unembed.W_U`` (transposed), or tied to ``W_E``
=========================================  ===================================================

Rotary: both use the rotate-half layout on the whole head (``cos``/``sin`` tables
``cat([freqs, freqs])``), base ``rope_theta``. Only the default rope type is supported; scaled
variants (linear, dynamic, yarn, llama3, longrope) raise.

Biases: ``attention_bias`` gives ``q/k/v/o`` biases, ``mlp_bias`` gives ``gate/up/down`` biases.
Our ``use_bias`` covers all of them except a gate bias (our SwiGLU has none), so a checkpoint with
a nonzero ``gate_proj.bias`` is refused; biases a checkpoint lacks are zeros in our model.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from torch import Tensor

from circuits.config import TransformerConfig
from circuits.hf.checkpoint import Weights
from circuits.hf.common import UnsupportedCheckpointError, get_float, get_int, require, require_zero, zeros_like_or
from circuits.model.positional import RotaryPositions, positional_scheme

ARCHITECTURES = ("LlamaForCausalLM", "LlamaModel")


def rope_settings(hf: dict[str, Any], arch: str) -> float:
    """``rope_theta`` after checking that the rope is the plain (unscaled, full-head) one.

    transformers 5 writes ``rope_parameters: {"rope_type", "rope_theta", ...}``; older files have
    ``rope_theta`` and ``rope_scaling`` at the top level. Both are read.
    """
    params = hf.get("rope_parameters")
    scaling = hf.get("rope_scaling")
    if params is not None and not isinstance(params, dict):
        raise UnsupportedCheckpointError(f"{arch} config.json has rope_parameters={params!r}; expected one dict (per-layer rope is not supported)")
    merged: dict[str, Any] = {}
    if isinstance(scaling, dict):
        merged.update(scaling)
    elif scaling is not None:
        raise UnsupportedCheckpointError(f"{arch} config.json has rope_scaling={scaling!r}; only no scaling is supported")
    merged.update(params or {})
    rope_type = merged.get("rope_type", merged.get("type", "default"))
    if rope_type != "default":
        raise UnsupportedCheckpointError(
            f"{arch} config.json uses rope_type={rope_type!r} (rope scaling); circuits' Rotary implements only the "
            "default rope (inverse frequencies base^(-2i/d_head), no scaling); load a checkpoint without rope scaling"
        )
    extra = sorted(set(merged) - {"rope_type", "type", "rope_theta"})
    if merged.get("partial_rotary_factor", 1.0) != 1.0 or [k for k in extra if k != "partial_rotary_factor"]:
        raise UnsupportedCheckpointError(
            f"{arch} config.json has rope settings {dict((k, merged[k]) for k in extra)}; only rope_theta is supported "
            "(LlamaForCausalLM rotates whole heads)"
        )
    theta = merged.get("rope_theta", hf.get("rope_theta", 10000.0))
    return float(theta)


def config_from_hf(hf: dict[str, Any], architecture: str) -> TransformerConfig:
    arch = architecture
    require(hf, arch, "hidden_act", ("silu",), "our gated MLP is SwiGLU: silu(x W_gate) * (x W_in)", "silu")
    require(hf, arch, "pretraining_tp", (1, None), "tensor-parallel slicing changes float rounding only, but is untested", 1)
    for key in ("sliding_window", "attention_chunk_size", "layer_types"):
        if hf.get(key) is not None:
            raise UnsupportedCheckpointError(f"{arch} config.json sets {key}={hf[key]!r}; LlamaForCausalLM attention with it is not supported")
    d_model, n_heads = get_int(hf, arch, "hidden_size"), get_int(hf, arch, "num_attention_heads")
    head_dim = hf.get("head_dim") or d_model // n_heads
    attention_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
    return TransformerConfig(
        n_layers=get_int(hf, arch, "num_hidden_layers"),
        d_model=d_model,
        n_heads=n_heads,
        d_head=head_dim,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        d_vocab=get_int(hf, arch, "vocab_size"),
        n_ctx=get_int(hf, arch, "max_position_embeddings"),
        d_mlp=get_int(hf, arch, "intermediate_size"),
        act_fn="swiglu",
        normalization="rmsnorm",
        norm_position="pre",
        norm_eps=get_float(hf, arch, "rms_norm_eps", 1e-6),
        positional="rotary",
        rotary_base=rope_settings(hf, arch),
        mask="causal",
        use_bias=attention_bias or mlp_bias,
        tied_embeddings=bool(hf.get("tie_word_embeddings", False)) or architecture == "LlamaModel",
    )


def ignored_tensors() -> list[str]:
    """Rotary caches some old checkpoints saved."""
    return [r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq", r"rotary_emb\.inv_freq"]


def _maybe(w: Weights, name: str, shape: tuple[int, ...]) -> Tensor:
    return w.take(name, shape) if name in w else torch.zeros(shape)


def state_from_hf(w: Weights, cfg: TransformerConfig) -> dict[str, Tensor]:
    d, h, kv, e, m = cfg.d_model, cfg.n_heads, cfg.n_kv_heads_, cfg.d_head_, cfg.d_mlp_
    state = {"embed.W_E": w.take("embed_tokens.weight", (cfg.d_vocab, d))}
    for l in range(cfg.n_layers):
        p, q = f"layers.{l}.", f"blocks.{l}."
        state[q + "ln1.w"] = w.take(p + "input_layernorm.weight", (d,))
        state[q + "ln2.w"] = w.take(p + "post_attention_layernorm.weight", (d,))
        for name, proj, heads in (("Q", "q_proj", h), ("K", "k_proj", kv), ("V", "v_proj", kv)):
            weight = w.take(p + f"self_attn.{proj}.weight", (heads * e, d))
            state[q + f"attn.W_{name}"] = einops.rearrange(weight, "(head d_head) d_model -> head d_model d_head", head=heads)
            if cfg.use_bias:
                bias = _maybe(w, p + f"self_attn.{proj}.bias", (heads * e,))
                state[q + f"attn.b_{name}"] = einops.rearrange(bias, "(head d_head) -> head d_head", head=heads)
        state[q + "attn.W_O"] = einops.rearrange(
            w.take(p + "self_attn.o_proj.weight", (d, h * e)), "d_model (head d_head) -> head d_head d_model", head=h
        )
        state[q + "mlp.W_gate"] = w.take(p + "mlp.gate_proj.weight", (m, d)).T
        state[q + "mlp.W_in"] = w.take(p + "mlp.up_proj.weight", (m, d)).T
        state[q + "mlp.W_out"] = w.take(p + "mlp.down_proj.weight", (d, m)).T
        if cfg.use_bias:
            state[q + "attn.b_O"] = _maybe(w, p + "self_attn.o_proj.bias", (d,))
            state[q + "mlp.b_in"] = _maybe(w, p + "mlp.up_proj.bias", (m,))
            state[q + "mlp.b_out"] = _maybe(w, p + "mlp.down_proj.bias", (d,))
            if p + "mlp.gate_proj.bias" in w:
                gate_bias = w.take(p + "mlp.gate_proj.bias", (m,))
                if bool(gate_bias.ne(0).any()):
                    raise UnsupportedCheckpointError(
                        f"{w.architecture} checkpoint has a nonzero {p}mlp.gate_proj.bias (mlp_bias=True); "
                        "circuits' SwiGLU has no gate bias, so this model cannot be loaded exactly"
                    )
    state["ln_final.w"] = w.take("norm.weight", (d,))
    if not cfg.tied_embeddings:
        state["unembed.W_U"] = w.take("lm_head.weight", (cfg.d_vocab, d)).T
    elif "lm_head.weight" in w:
        w.take("lm_head.weight")  # tied: transformers uses embed_tokens.weight
    if cfg.use_bias:
        state["unembed.b_U"] = torch.zeros(cfg.d_vocab_out_)
    return state


# ---- export ----------------------------------------------------------------------------------
def export_problems(cfg: TransformerConfig) -> list[str]:
    """Config fields that keep a model from being a ``LlamaForCausalLM`` (empty when it can be exported exactly)."""
    problems = []
    if cfg.normalization != "rmsnorm" or cfg.norm_position != "pre":
        problems.append(f"normalization={cfg.normalization!r}, norm_position={cfg.norm_position!r} (LLaMA is pre-norm RMSNorm)")
    if not isinstance(positional_scheme(cfg), RotaryPositions):
        problems.append(f"positional={cfg.positional!r} (LLaMA uses rotary embeddings)")
    elif cfg.rotary_dim_ != cfg.d_head_:
        problems.append(f"rotary_dim={cfg.rotary_dim} != d_head={cfg.d_head_} (LLaMA rotates whole heads)")
    if cfg.act_fn != "swiglu":
        problems.append(f"act_fn={cfg.act_fn!r} (LLaMA's MLP is SwiGLU)")
    if cfg.mask != "causal":
        problems.append(f"mask={cfg.mask!r} (LLaMA is causal)")
    if cfg.d_model % cfg.n_heads:
        problems.append(
            f"d_model={cfg.d_model} not divisible by n_heads={cfg.n_heads} (transformers' LlamaConfig requires it, "
            "even though head_dim is separate)"
        )
    if cfg.attn_only:
        problems.append("attn_only=True (every LLaMA block has an MLP)")
    if cfg.n_layers == 0:
        problems.append("n_layers=0 (our zero-layer model has no final norm; LLaMA always has one)")
    if cfg.smear_key:
        problems.append("smear_key=True (LLaMA has no smeared keys)")
    if cfg.n_token_types:
        problems.append(f"n_token_types={cfg.n_token_types} (LLaMA has no token-type embeddings)")
    if cfg.d_vocab_out_ != cfg.d_vocab:
        problems.append(f"d_vocab_out={cfg.d_vocab_out} != d_vocab={cfg.d_vocab} (LLaMA's lm_head maps to its input vocabulary)")
    return problems


def config_to_hf(cfg: TransformerConfig, bos_id: int | None, eos_id: int | None) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.d_vocab,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_mlp_,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads_,
        "head_dim": cfg.d_head_,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.n_ctx,
        "rms_norm_eps": cfg.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(cfg.rotary_base)},
        "attention_bias": cfg.use_bias,
        "mlp_bias": cfg.use_bias,
        "attention_dropout": 0.0,
        "pretraining_tp": 1,
        "tie_word_embeddings": cfg.tied_embeddings,
        "initializer_range": cfg.init_range_,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": None,
        "dtype": "float32",
    }


def state_to_hf(model) -> dict[str, Tensor]:
    cfg: TransformerConfig = model.config
    require_zero(model.unembed.b_U, "unembed.b_U", "LLaMA's lm_head", "zero it before exporting")
    like = model.embed.W_E
    out = {"model.embed_tokens.weight": model.embed.W_E.detach()}
    for l, block in enumerate(model.blocks):
        p = f"model.layers.{l}."
        attn, mlp = block.attn, block.mlp
        out[p + "input_layernorm.weight"] = block.ln1.w.detach()
        out[p + "post_attention_layernorm.weight"] = block.ln2.w.detach()
        for name, proj in (("Q", "q_proj"), ("K", "k_proj"), ("V", "v_proj")):
            out[p + f"self_attn.{proj}.weight"] = einops.rearrange(
                getattr(attn, f"W_{name}").detach(), "head d_model d_head -> (head d_head) d_model"
            )
            if cfg.use_bias:
                out[p + f"self_attn.{proj}.bias"] = getattr(attn, f"b_{name}").detach().reshape(-1)
        out[p + "self_attn.o_proj.weight"] = einops.rearrange(attn.W_O.detach(), "head d_head d_model -> d_model (head d_head)")
        out[p + "mlp.gate_proj.weight"] = mlp.W_gate.detach().T
        out[p + "mlp.up_proj.weight"] = mlp.W_in.detach().T
        out[p + "mlp.down_proj.weight"] = mlp.W_out.detach().T
        if cfg.use_bias:
            out[p + "self_attn.o_proj.bias"] = attn.b_O.detach()
            out[p + "mlp.gate_proj.bias"] = zeros_like_or(None, (cfg.d_mlp_,), like)
            out[p + "mlp.up_proj.bias"] = mlp.b_in.detach()
            out[p + "mlp.down_proj.bias"] = mlp.b_out.detach()
    out["model.norm.weight"] = model.ln_final.w.detach()
    if not cfg.tied_embeddings:
        out["lm_head.weight"] = model.unembed.W_U.detach().T
    return out
