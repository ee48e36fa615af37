"""Logit lens and direct logit attribution, each checked against the model's real logits.

Both read the residual stream through the final norm. The final norm is not linear; the two
analyses treat it differently, on purpose:

- **logit lens** asks "what would the model predict if the residual stream stopped here": it
  applies ``ln_final`` to each intermediate residual stream *with that stream's own
  normalization statistics* (a LayerNorm scale computed from the final stream would mis-scale
  early layers, whose norm is smaller), then the unembedding. Completeness: the lens at the
  last layer equals the logits.
- **direct logit attribution** splits the *final* residual stream into the components that wrote
  it (``embed``, ``pos_embed``, one term per head ``L{l}H{h}``, ``mlp{l}``, ``bias``) and sends
  each through the final norm with the scale frozen from the forward pass (the norm's linear
  part: centring, division by the frozen scale, gain) and ``W_U``. The terms sum to the logits
  exactly; ``bias`` holds every bias (``b_O``, ``b_out``, the final norm's ``b`` and ``b_U``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from circuits.analysis.common import check_model, check_sum, head_label
from circuits.model.norm import LayerNorm, RMSNorm


def final_norm_linear(
    model, x: Float[Tensor, "*batch d_model"], scale: Tensor | None
) -> Float[Tensor, "*batch d_model"]:
    """The linear part of ``ln_final`` with a frozen ``scale``: LayerNorm ``(x - mean(x)) / scale * w``,
    RMSNorm ``x / scale * w``, no norm ``x``. ``scale`` is ``ln_final.hook_scale`` (broadcast to ``x``)."""
    norm = model.ln_final
    if isinstance(norm, nn.Identity):
        return x
    if scale is None:
        raise ValueError("this model has a final norm: pass the frozen scale (ln_final.hook_scale) of the forward pass")
    if isinstance(norm, LayerNorm):
        return (x - x.mean(-1, keepdim=True)) / scale * norm.w
    if isinstance(norm, RMSNorm):
        return x / scale * norm.w
    raise ValueError(f"unsupported final norm {type(norm).__name__}")


def final_norm_bias(model) -> Tensor | None:
    """The final norm's additive bias ``b`` (LayerNorm), else ``None``."""
    return model.ln_final.b if isinstance(model.ln_final, LayerNorm) else None


# ---- logit lens ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogitLens:
    """``logits[i]`` = unembed(ln_final(residual stream ``labels[i]``)), each normalized with its own statistics.

    Labels: ``resid_pre{l}`` (the stream entering block ``l``) and ``final`` (the stream the
    model unembeds). ``max_error`` = max |lens at ``final`` - the model's logits|.
    """

    logits: Float[Tensor, "layer_plus_1 batch pos d_vocab_out"]
    labels: list[str]
    max_error: float

    def log_probs(self) -> Float[Tensor, "layer_plus_1 batch pos d_vocab_out"]:
        return self.logits.log_softmax(-1)


def logit_lens(model, tokens: Int[Tensor, "batch pos"]) -> LogitLens:
    """Logit lens at every layer (see the module docstring for the normalization), with a completeness check."""
    check_model(model)
    tokens = model.check_tokens(tokens)
    n_layers = model.config.n_layers
    if n_layers == 0:
        with torch.no_grad():
            logits = model(tokens)
        return LogitLens(logits[None], ["final"], 0.0)
    names = [f"blocks.{l}.hook_resid_pre" for l in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=names)
        resid = torch.stack([cache[name] for name in names])  # [layer_plus_1, batch, pos, d_model]
        lens = model.unembed(model.ln_final(resid.flatten(0, 1))).unflatten(0, resid.shape[:2])
    error = check_sum(lens[-1], logits, "logit lens at the final layer vs the model's logits")
    labels = [f"resid_pre{l}" for l in range(n_layers)] + ["final"]
    return LogitLens(lens, labels, error)


# ---- direct logit attribution ----------------------------------------------------------------
@dataclass(frozen=True)
class DirectLogitAttribution:
    """``terms[c]`` = component ``labels[c]``'s direct contribution to the logits; ``terms.sum(0) == logits``.

    ``max_error`` = max |sum(terms) - logits| (checked on construction by
    :func:`direct_logit_attribution`).
    """

    terms: Float[Tensor, "component batch pos d_vocab_out"]
    labels: list[str]
    logits: Float[Tensor, "batch pos d_vocab_out"]
    max_error: float

    def at(self, targets: Int[Tensor, "batch pos"]) -> Float[Tensor, "component batch pos"]:
        """Each component's contribution to the logit of ``targets[b, p]`` at every position."""
        index = targets[None, :, :, None].expand(self.terms.shape[0], -1, -1, 1)
        return self.terms.gather(-1, index).squeeze(-1)

    def next_token(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "component batch pos_minus_1"]:
        """Contribution to the logit of the actual next token (position ``p`` predicts ``tokens[:, p + 1]``)."""
        index = tokens[None, :, 1:, None].expand(self.terms.shape[0], -1, -1, 1)
        return self.terms[:, :, :-1].gather(-1, index).squeeze(-1)

    def __getitem__(self, label: str) -> Float[Tensor, "batch pos d_vocab_out"]:
        if label not in self.labels:
            raise KeyError(f"no component {label!r}; components are {self.labels}")
        return self.terms[self.labels.index(label)]


def residual_components(model, cache) -> tuple[list[Tensor], list[str], Tensor]:
    """The final residual stream split into ``(components, labels, bias)`` from a cache holding the needed hooks."""
    cfg = model.config
    parts = [cache["hook_embed"]]
    labels = ["embed"]
    if model.positional.in_residual:
        parts.append(cache[model.positional.hook_name])
        labels.append("pos_embed")
    if cfg.n_token_types:
        parts.append(cache["hook_token_type_embed"])
        labels.append("token_type_embed")
    bias = torch.zeros_like(parts[0])
    for l, block in enumerate(model.blocks):
        result = cache[f"blocks.{l}.attn.hook_result"]  # [batch, pos, head, d_model]
        parts.extend(result.unbind(2))
        labels.extend(head_label(l, h) for h in range(cfg.n_heads))
        if block.attn.b_O is not None:
            bias = bias + block.attn.b_O
        if hasattr(block, "mlp"):
            mlp_out = cache[f"blocks.{l}.hook_mlp_out"]
            b_out = block.mlp.b_out
            parts.append(mlp_out if b_out is None else mlp_out - b_out)
            labels.append(f"mlp{l}")
            if b_out is not None:
                bias = bias + b_out
    return parts, labels, bias


def _decomposition_hooks(model) -> list[str]:
    cfg = model.config
    names = ["hook_embed"]
    if model.positional.in_residual:
        names.append(model.positional.hook_name)
    if cfg.n_token_types:
        names.append("hook_token_type_embed")
    for l, block in enumerate(model.blocks):
        names.append(f"blocks.{l}.attn.hook_result")
        if hasattr(block, "mlp"):
            names.append(f"blocks.{l}.hook_mlp_out")
    if "ln_final.hook_scale" in model.hook_dict:
        names.append("ln_final.hook_scale")
    return names


def direct_logit_attribution(model, tokens: Int[Tensor, "batch pos"]) -> DirectLogitAttribution:
    """Direct logit attribution of every component (embeddings, heads, MLPs, biases), summing to the logits.

    Pre-norm (or norm-free) models only: with post-norm blocks the final residual stream is not
    a sum of component outputs, so this raises ``ValueError``.
    """
    check_model(model)
    tokens = model.check_tokens(tokens)
    if model.config.norm_position == "post":
        raise ValueError(
            "direct_logit_attribution needs a residual stream that is the sum of the components' outputs; "
            "post-norm blocks (norm_position='post') renormalize it after every block. Use a pre-norm model."
        )
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=_decomposition_hooks(model))
        parts, labels, bias = residual_components(model, cache)
        scale = cache["ln_final.hook_scale"] if "ln_final.hook_scale" in cache else None
        stack = torch.stack(parts + [bias])  # [component, batch, pos, d_model]
        terms = final_norm_linear(model, stack, scale) @ model.W_U
        constant = model.b_U
        ln_b = final_norm_bias(model)
        if ln_b is not None:
            constant = constant + ln_b @ model.W_U
        terms[-1] += constant
    error = check_sum(terms.sum(0), logits, "direct logit attribution")
    return DirectLogitAttribution(terms, labels + ["bias"], logits, error)
