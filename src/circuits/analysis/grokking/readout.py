"""Arrays read off a modular-addition model over every input pair: logits, neuron activations, attention, weights.

Everything is at the ``=`` position (the last), in ``float64`` numpy, indexed ``[a, b, ...]``
for inputs ``a b =`` (:func:`circuits.training.modular.all_pairs` order). These feed the pure
functions of :mod:`circuits.analysis.grokking.fourier`.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float

from circuits.model import Transformer
from circuits.training.modular import all_pairs, last_position_logits, pair_tokens

__all__ = ["check_modular_model", "all_logits", "neuron_activations", "attention_to_operands", "embedding_numbers", "neuron_logit_map", "weight_norm"]


def check_modular_model(model: Transformer, p: int) -> None:
    """Refuse a model that cannot read ``a b =`` sequences of modulus ``p`` (vocabulary ``p + 1``, 3 positions, ``p`` classes)."""
    cfg = model.config
    if cfg.d_vocab != p + 1 or cfg.d_vocab_out_ < p or cfg.n_ctx < 3:
        raise ValueError(
            f"a modular-addition model for p={p} needs d_vocab={p + 1} (numbers and '='), d_vocab_out={p} and n_ctx >= 3; "
            f"this one has d_vocab={cfg.d_vocab}, d_vocab_out={cfg.d_vocab_out_}, n_ctx={cfg.n_ctx}"
        )


@torch.no_grad()
def all_logits(model: Transformer, p: int) -> Float[np.ndarray, "a b c"]:
    """The logits over the ``p`` number classes at ``=`` for every pair, ``[p, p, p]``."""
    check_modular_model(model, p)
    tokens, _ = pair_tokens(all_pairs(p), p)
    was_training = model.training
    model.eval()
    logits = last_position_logits(model, tokens)[:, :p]
    model.train(was_training)
    return logits.double().numpy().reshape(p, p, p)


@torch.no_grad()
def neuron_activations(model: Transformer, p: int, layer: int = 0) -> Float[np.ndarray, "a b neuron"]:
    """The MLP neurons' activations (``hook_post``) of block ``layer`` at ``=`` for every pair, ``[p, p, d_mlp]``."""
    check_modular_model(model, p)
    if not model.config.has_mlp:
        raise ValueError("neuron_activations needs a model with MLPs (attn_only=False)")
    tokens, _ = pair_tokens(all_pairs(p), p)
    name = f"blocks.{layer}.mlp.hook_post"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name][:, -1].double().numpy().reshape(p, p, -1)


@torch.no_grad()
def attention_to_operands(model: Transformer, p: int, layer: int = 0) -> Float[np.ndarray, "head a b"]:
    """Each head's attention from ``=`` to the first operand ``a`` for every pair, ``[head, p, p]`` (to ``b``: read it transposed)."""
    check_modular_model(model, p)
    tokens, _ = pair_tokens(all_pairs(p), p)
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    pattern = cache[name][:, :, -1, 0]  # [pair, head]: query "=", key a
    return pattern.double().numpy().T.reshape(-1, p, p)


def embedding_numbers(model: Transformer, p: int) -> Float[np.ndarray, "p d_model"]:
    """The embedding ``W_E`` of the number tokens ``0 .. p-1`` (the ``=`` row left out)."""
    check_modular_model(model, p)
    return model.embed.W_E.detach()[:p].double().numpy()


def neuron_logit_map(model: Transformer, p: int, layer: int = 0) -> Float[np.ndarray, "c neuron"]:
    """``W_L = W_out W_U`` read along the output classes: ``[p, d_mlp]``, the direct effect of each neuron on each logit."""
    check_modular_model(model, p)
    mlp = model.blocks[layer].mlp
    return (mlp.W_out.detach() @ model.unembed.W_U.detach()[:, :p]).double().numpy().T


def weight_norm(model: torch.nn.Module) -> float:
    """The sum of squared parameters (the paper's "total sum of squared weights" progress measure)."""
    return float(sum((param.detach().double() ** 2).sum() for param in model.parameters()))
