"""GPT-2 (``GPT2LMHeadModel`` / ``GPT2Model``) <-> ``circuits.Transformer``.

GPT-2 stores its projections as ``Conv1D`` weights ``[in, out]``, already in our right-multiplying
orientation; ``c_attn`` is ``[d_model, 3 * d_model]`` holding ``q | k | v``, each head-major.

=============================  ==========================================================
Hugging Face                   circuits
=============================  ==========================================================
``wte.weight [V, d]``          ``embed.W_E``
``wpe.weight [n_ctx, d]``      ``pos_embed.W_pos``
``h.{l}.ln_1``/``ln_2``        ``blocks.{l}.ln1``/``ln2`` (``weight`` -> ``w``, ``bias`` -> ``b``)
``h.{l}.attn.c_attn``          ``W_Q``/``W_K``/``W_V`` ``[head, d_model, d_head]``, ``b_Q``/``b_K``/``b_V``
``h.{l}.attn.c_proj``          ``W_O [head, d_head, d_model]``, ``b_O``
``h.{l}.mlp.c_fc``/``c_proj``  ``W_in``, ``b_in`` / ``W_out``, ``b_out``
``ln_f``                       ``ln_final``
``lm_head.weight [V, d]``      ``unembed.W_U = lm_head.weight^T``, or tied to ``W_E``
=============================  ==========================================================

GPT-2's unembedding has no bias; our GPT-2-style model has ``b_U`` (zero after import; export
refuses a nonzero one).
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from torch import Tensor

from circuits.config import TransformerConfig
from circuits.hf.checkpoint import Weights
from circuits.hf.common import get_activation, get_float, get_heads, get_int, require, require_zero, zeros_like_or
from circuits.model.positional import LearnedPositions, positional_scheme

ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")

_ACT_TO_HF = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}


def config_from_hf(hf: dict[str, Any], architecture: str) -> TransformerConfig:
    arch = architecture
    require(hf, arch, "add_cross_attention", (False, None), "cross-attention needs an encoder; our blocks are self-attention only", False)
    require(hf, arch, "scale_attn_weights", (True,), "our attention always divides scores by sqrt(d_head)", True)
    require(
        hf, arch, "scale_attn_by_inverse_layer_idx", (False,), "our attention has no per-layer 1/(layer+1) score scale", False
    )
    act_fn = get_activation(hf, arch, "activation_function", "gelu_new")
    d_model, n_heads = get_heads(hf, arch, "n_embd", "n_head")
    tied = bool(hf.get("tie_word_embeddings", True)) or architecture == "GPT2Model"
    return TransformerConfig(
        n_layers=get_int(hf, arch, "n_layer"),
        d_model=d_model,
        n_heads=n_heads,
        d_vocab=get_int(hf, arch, "vocab_size"),
        n_ctx=get_int(hf, arch, "n_positions"),
        d_mlp=hf.get("n_inner") or 4 * d_model,
        act_fn=act_fn,
        normalization="layernorm",
        norm_position="pre",
        norm_eps=get_float(hf, arch, "layer_norm_epsilon", 1e-5),
        positional="learned",
        mask="causal",
        use_bias=True,
        tied_embeddings=tied,
    )


def ignored_tensors() -> list[str]:
    """Buffers of old GPT-2 checkpoints (causal-mask tables) that hold no weights."""
    return [r"h\.\d+\.attn\.(bias|masked_bias)"]


def state_from_hf(w: Weights, cfg: TransformerConfig) -> dict[str, Tensor]:
    d, h, m = cfg.d_model, cfg.n_heads, cfg.d_mlp_
    state = {"embed.W_E": w.take("wte.weight", (cfg.d_vocab, d)), "pos_embed.W_pos": w.take("wpe.weight", (cfg.n_ctx, d))}
    for l in range(cfg.n_layers):
        p, q = f"h.{l}.", f"blocks.{l}."
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            state[q + ours + ".w"] = w.take(p + theirs + ".weight", (d,))
            state[q + ours + ".b"] = w.take(p + theirs + ".bias", (d,))
        qkv = w.take(p + "attn.c_attn.weight", (d, 3 * d))
        qkv_b = w.take(p + "attn.c_attn.bias", (3 * d,))
        for i, name in enumerate("QKV"):
            state[q + f"attn.W_{name}"] = einops.rearrange(
                qkv[:, i * d : (i + 1) * d], "d_model (head d_head) -> head d_model d_head", head=h
            )
            state[q + f"attn.b_{name}"] = einops.rearrange(qkv_b[i * d : (i + 1) * d], "(head d_head) -> head d_head", head=h)
        state[q + "attn.W_O"] = einops.rearrange(
            w.take(p + "attn.c_proj.weight", (d, d)), "(head d_head) d_model -> head d_head d_model", head=h
        )
        state[q + "attn.b_O"] = w.take(p + "attn.c_proj.bias", (d,))
        state[q + "mlp.W_in"] = w.take(p + "mlp.c_fc.weight", (d, m))
        state[q + "mlp.b_in"] = w.take(p + "mlp.c_fc.bias", (m,))
        state[q + "mlp.W_out"] = w.take(p + "mlp.c_proj.weight", (m, d))
        state[q + "mlp.b_out"] = w.take(p + "mlp.c_proj.bias", (d,))
    state["ln_final.w"] = w.take("ln_f.weight", (d,))
    state["ln_final.b"] = w.take("ln_f.bias", (d,))
    if not cfg.tied_embeddings:
        state["unembed.W_U"] = w.take("lm_head.weight", (cfg.d_vocab, d)).T
    elif "lm_head.weight" in w:
        w.take("lm_head.weight")  # tied: transformers uses wte.weight, whatever was saved here
    state["unembed.b_U"] = torch.zeros(cfg.d_vocab_out_)
    return state


# ---- export ----------------------------------------------------------------------------------
def export_problems(cfg: TransformerConfig) -> list[str]:
    """Config fields that keep a model from being a GPT-2 (empty when it can be exported exactly)."""
    problems = []
    if cfg.normalization != "layernorm" or cfg.norm_position != "pre":
        problems.append(f"normalization={cfg.normalization!r}, norm_position={cfg.norm_position!r} (GPT-2 is pre-norm LayerNorm)")
    if not isinstance(positional_scheme(cfg), LearnedPositions):
        problems.append(f"positional={cfg.positional!r} (GPT-2 adds learned positions to the residual stream)")
    if cfg.mask != "causal":
        problems.append(f"mask={cfg.mask!r} (GPT-2 is causal)")
    if cfg.act_fn not in _ACT_TO_HF:
        problems.append(f"act_fn={cfg.act_fn!r} (GPT-2's MLP is not gated; use one of {sorted(_ACT_TO_HF)})")
    if cfg.n_heads * cfg.d_head_ != cfg.d_model:
        problems.append(f"n_heads * d_head = {cfg.n_heads} * {cfg.d_head_} != d_model={cfg.d_model} (GPT-2 has no separate head size)")
    if cfg.n_kv_heads_ != cfg.n_heads:
        problems.append(f"n_kv_heads={cfg.n_kv_heads} (GPT-2 has no grouped-query attention)")
    if cfg.attn_only:
        problems.append("attn_only=True (every GPT-2 block has an MLP)")
    if cfg.n_layers == 0:
        problems.append("n_layers=0 (our zero-layer model has no final norm; GPT-2 always has ln_f)")
    if cfg.smear_key:
        problems.append("smear_key=True (GPT-2 has no smeared keys)")
    if cfg.n_token_types:
        problems.append(f"n_token_types={cfg.n_token_types} (GPT-2 has no token-type embeddings)")
    if cfg.d_vocab_out_ != cfg.d_vocab:
        problems.append(f"d_vocab_out={cfg.d_vocab_out} != d_vocab={cfg.d_vocab} (GPT-2's lm_head maps to its input vocabulary)")
    return problems


def config_to_hf(cfg: TransformerConfig, bos_id: int | None, eos_id: int | None) -> dict[str, Any]:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.d_vocab,
        "n_positions": cfg.n_ctx,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.d_mlp_,
        "activation_function": _ACT_TO_HF[cfg.act_fn],
        "layer_norm_epsilon": cfg.norm_eps,
        "tie_word_embeddings": cfg.tied_embeddings,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": cfg.init_range_,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "dtype": "float32",
    }


def state_to_hf(model) -> dict[str, Tensor]:
    cfg: TransformerConfig = model.config
    require_zero(model.unembed.b_U, "unembed.b_U", "GPT-2's lm_head", "zero it or export a model with use_bias=False")
    like = model.embed.W_E
    d = cfg.d_model
    out = {"transformer.wte.weight": model.embed.W_E.detach(), "transformer.wpe.weight": model.pos_embed.W_pos.detach()}
    for l, block in enumerate(model.blocks):
        p = f"transformer.h.{l}."
        for ours, theirs in ((block.ln1, "ln_1"), (block.ln2, "ln_2")):
            out[p + theirs + ".weight"] = ours.w.detach()
            out[p + theirs + ".bias"] = ours.b.detach()
        attn = block.attn
        out[p + "attn.c_attn.weight"] = torch.cat(
            [einops.rearrange(W.detach(), "head d_model d_head -> d_model (head d_head)") for W in (attn.W_Q, attn.W_K, attn.W_V)], dim=1
        )
        out[p + "attn.c_attn.bias"] = torch.cat(
            [zeros_like_or(b, (d,), like).reshape(-1) for b in (attn.b_Q, attn.b_K, attn.b_V)]
        )
        out[p + "attn.c_proj.weight"] = einops.rearrange(attn.W_O.detach(), "head d_head d_model -> (head d_head) d_model")
        out[p + "attn.c_proj.bias"] = zeros_like_or(attn.b_O, (d,), like)
        out[p + "mlp.c_fc.weight"] = block.mlp.W_in.detach()
        out[p + "mlp.c_fc.bias"] = zeros_like_or(block.mlp.b_in, (cfg.d_mlp_,), like)
        out[p + "mlp.c_proj.weight"] = block.mlp.W_out.detach()
        out[p + "mlp.c_proj.bias"] = zeros_like_or(block.mlp.b_out, (d,), like)
    out["transformer.ln_f.weight"] = model.ln_final.w.detach()
    out["transformer.ln_f.bias"] = model.ln_final.b.detach()
    if not cfg.tied_embeddings:
        out["lm_head.weight"] = model.unembed.W_U.detach().T
    return out


