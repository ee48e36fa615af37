"""BERT encoders (``BertModel``) -> ``circuits.Transformer`` (import only).

BERT is post-norm: a LayerNorm on the embeddings (our ``ln_embed``), then per block
``resid_mid = LN(resid_pre + attn_out)``, ``resid_post = LN(resid_mid + mlp_out)`` and no final
norm, with a bidirectional mask, learned positions and token-type (segment) embeddings. So
``blocks.{l}.hook_resid_post`` is Hugging Face's ``hidden_states[l + 1]`` and ``hook_resid_pre``
of block 0 is ``hidden_states[0]``.

==============================================  ===========================================
Hugging Face                                    circuits
==============================================  ===========================================
``embeddings.word_embeddings``                  ``embed.W_E``
``embeddings.position_embeddings``              ``pos_embed.W_pos``
``embeddings.token_type_embeddings``            ``token_type_embed.W_token_type``
``embeddings.LayerNorm``                        ``ln_embed``
``encoder.layer.{l}.attention.self.query``...   ``W_Q``/``W_K``/``W_V`` (+ biases)
``encoder.layer.{l}.attention.output.dense``    ``W_O``, ``b_O``
``encoder.layer.{l}.attention.output.LayerNorm``  ``ln1``
``encoder.layer.{l}.intermediate.dense``        ``W_in``, ``b_in``
``encoder.layer.{l}.output.dense``              ``W_out``, ``b_out``
``encoder.layer.{l}.output.LayerNorm``          ``ln2``
``pooler.dense``                                not loaded (sentence encoders mean-pool instead)
==============================================  ===========================================

``BertModel`` has no language-model head. Our model always ends in an unembedding, so it is
tied to the word embeddings (``W_U = W_E^T``, ``b_U = 0``): "logits" are dot products of the
final hidden states with the token embeddings, not BERT's masked-LM predictions (whose head has
an extra dense + GELU + LayerNorm transform that is not loaded).
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from torch import Tensor

from circuits.config import TransformerConfig
from circuits.hf.checkpoint import Weights
from circuits.hf.common import get_activation, get_float, get_heads, get_int, require

ARCHITECTURES = ("BertModel",)



def config_from_hf(hf: dict[str, Any], architecture: str) -> TransformerConfig:
    arch = architecture
    require(hf, arch, "is_decoder", (False, None), "our BERT import is the bidirectional encoder", False)
    require(hf, arch, "add_cross_attention", (False, None), "cross-attention needs a second encoder", False)
    require(
        hf, arch, "position_embedding_type", ("absolute", None), "relative_key(_query) position biases are not implemented", "absolute"
    )
    act_fn = get_activation(hf, arch, "hidden_act", "gelu")
    d_model, n_heads = get_heads(hf, arch, "hidden_size", "num_attention_heads")
    return TransformerConfig(
        n_layers=get_int(hf, arch, "num_hidden_layers"),
        d_model=d_model,
        n_heads=n_heads,
        d_vocab=get_int(hf, arch, "vocab_size"),
        n_ctx=get_int(hf, arch, "max_position_embeddings"),
        d_mlp=get_int(hf, arch, "intermediate_size"),
        act_fn=act_fn,
        normalization="layernorm",
        norm_position="post",
        norm_eps=get_float(hf, arch, "layer_norm_eps", 1e-12),
        positional="learned",
        mask="bidirectional",
        n_token_types=get_int(hf, arch, "type_vocab_size", 2),
        use_bias=True,
        tied_embeddings=True,
    )


def ignored_tensors() -> list[str]:
    """The pooler (a dense + tanh on [CLS], unused by mean-pooling sentence encoders) and index buffers."""
    return [r"pooler\.dense\.(weight|bias)", r"embeddings\.position_ids", r"embeddings\.token_type_ids"]


def state_from_hf(w: Weights, cfg: TransformerConfig) -> dict[str, Tensor]:
    d, h, m = cfg.d_model, cfg.n_heads, cfg.d_mlp_
    state = {
        "embed.W_E": w.take("embeddings.word_embeddings.weight", (cfg.d_vocab, d)),
        "pos_embed.W_pos": w.take("embeddings.position_embeddings.weight", (cfg.n_ctx, d)),
        "token_type_embed.W_token_type": w.take("embeddings.token_type_embeddings.weight", (cfg.n_token_types, d)),
        "ln_embed.w": w.take("embeddings.LayerNorm.weight", (d,)),
        "ln_embed.b": w.take("embeddings.LayerNorm.bias", (d,)),
    }
    for l in range(cfg.n_layers):
        p, q = f"encoder.layer.{l}.", f"blocks.{l}."
        for name, theirs in (("Q", "query"), ("K", "key"), ("V", "value")):
            state[q + f"attn.W_{name}"] = einops.rearrange(
                w.take(p + f"attention.self.{theirs}.weight", (d, d)), "(head d_head) d_model -> head d_model d_head", head=h
            )
            state[q + f"attn.b_{name}"] = einops.rearrange(
                w.take(p + f"attention.self.{theirs}.bias", (d,)), "(head d_head) -> head d_head", head=h
            )
        state[q + "attn.W_O"] = einops.rearrange(
            w.take(p + "attention.output.dense.weight", (d, d)), "d_model (head d_head) -> head d_head d_model", head=h
        )
        state[q + "attn.b_O"] = w.take(p + "attention.output.dense.bias", (d,))
        state[q + "ln1.w"] = w.take(p + "attention.output.LayerNorm.weight", (d,))
        state[q + "ln1.b"] = w.take(p + "attention.output.LayerNorm.bias", (d,))
        state[q + "mlp.W_in"] = w.take(p + "intermediate.dense.weight", (m, d)).T
        state[q + "mlp.b_in"] = w.take(p + "intermediate.dense.bias", (m,))
        state[q + "mlp.W_out"] = w.take(p + "output.dense.weight", (d, m)).T
        state[q + "mlp.b_out"] = w.take(p + "output.dense.bias", (d,))
        state[q + "ln2.w"] = w.take(p + "output.LayerNorm.weight", (d,))
        state[q + "ln2.b"] = w.take(p + "output.LayerNorm.bias", (d,))
    state["unembed.b_U"] = torch.zeros(cfg.d_vocab)
    return state
