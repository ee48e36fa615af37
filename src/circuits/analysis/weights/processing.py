"""Weight processing: fold normalization into the weights that read it, centre, fold value biases.

Two entry points, both leaving the input model untouched:

- :func:`folded_weights` returns the stacked weights every weight circuit in ``circuits`` is
  computed from (:class:`FoldedWeights`). For a model without normalization these are the
  model's own weights (no copies). For a pre-norm model each norm's gain ``w`` is folded into
  the matrices that read its output (``ln1`` into ``W_Q``/``W_K``/``W_V``, ``ln_final`` into
  ``W_U``) and, for LayerNorm, those reading matrices are centred over ``d_model`` (the
  normalized vector has zero mean, so the mean direction of a reading matrix never
  contributes). The per-position normalization *scale* is nonlinear and is treated, as in the
  Framework paper ("Handling Layer Normalization"), as a reweighting of paths: circuits do not
  include it. Biases are not part of the bilinear circuits and are not kept.
- :func:`process_weights` returns a new :class:`~circuits.Transformer` whose weights are
  processed as in TransformerLens's ``from_pretrained`` (``fold_ln``,
  ``center_writing_weights``, ``center_unembed``, ``fold_value_biases``) and which computes
  the same function. What is preserved, exactly (to float rounding):

  ====================== ===================================================================
  step                   effect on the model's outputs
  ====================== ===================================================================
  fold_ln                logits unchanged (norm gains/biases move into the readers' weights
                         and biases; the norms keep only centring/scaling: ``w=1``, ``b=0``)
  center_writing_weights logits unchanged (LayerNorm only: every read of the residual stream
                         subtracts its mean, so the mean of each written vector is irrelevant)
  center_unembed         logits change by a per-position constant: new logits =
                         ``logits - logits.mean(-1, keepdim=True)``; log-probabilities, the
                         loss and every softmax are unchanged
  fold_value_biases      logits unchanged (attention rows sum to 1, so ``b_V`` contributes the
                         constant ``sum_h b_V^h W_O^h`` to ``attn_out``; it moves into ``b_O``)
  ====================== ===================================================================

  Hook activations inside the model do change (e.g. ``hook_q`` after folding, ``hook_resid_*``
  after centring); only the logits (and the quantities the table lists) are preserved.

Limits (each raises ``ValueError`` saying why):
  - post-norm models: each norm rescales the whole residual stream (not one reader's input), so
    there is no reader to fold its gain into;
  - ``fold_ln`` on a shortformer model with normalization: positions are added to the query/key
    input *after* ``ln1``, so folding ``ln1``'s gain into ``W_Q``/``W_K`` would also rescale the
    positions. :func:`folded_weights` handles this case (positions keep the raw ``W_Q``/``W_K``);
    only a processed *model* cannot express it;
  - ``fold_ln`` on a SwiGLU LayerNorm model whose ``ln2.b`` is non-zero: the gate has no bias to
    absorb ``ln2.b @ W_gate``.

A processed model may differ in two config fields: ``tied_embeddings`` becomes ``False`` (the
unembedding gets its own copy, since folding or centring changes ``W_U`` and ``W_E``
differently) and ``use_bias`` becomes ``True`` when folding produced a non-zero bias the original
architecture had no parameter for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.model import Transformer
from circuits.model.positional import PositionalScheme

__all__ = ["FoldedWeights", "folded_weights", "process_weights"]


@dataclass(frozen=True)
class FoldedWeights:
    """Stacked weights with normalization folded in: what the weight circuits are computed from.

    ``W_Q``/``W_K``/``W_V`` are expanded to query heads (grouped-query attention), so index
    ``[layer, head]`` is the weight query head ``head`` uses. ``W_Q_pos``/``W_K_pos`` are the
    matrices that read the position embedding ``W_pos``: the folded ``W_Q``/``W_K`` when
    positions are added to the residual stream (learned, sinusoidal), the raw ones for
    shortformer (positions bypass ``ln1``); ``None`` when the model has no ``W_pos``.
    With LayerNorm, ``W_O`` is centred over ``d_model`` too (its mean direction is invisible to
    every reader; this matters for the norms in composition scores). ``W_E`` and ``W_pos`` are the
    model's own, not centred: every matrix reading them is centred, which gives identical circuits.
    """

    W_E: Float[Tensor, "d_vocab d_model"]
    W_Q: Float[Tensor, "layer head d_model d_head"]
    W_K: Float[Tensor, "layer head d_model d_head"]
    W_V: Float[Tensor, "layer head d_model d_head"]
    W_O: Float[Tensor, "layer head d_head d_model"]
    W_U: Float[Tensor, "d_model d_vocab_out"]
    W_pos: Float[Tensor, "n_ctx d_model"] | None
    W_Q_pos: Float[Tensor, "layer head d_model d_head"] | None
    W_K_pos: Float[Tensor, "layer head d_model d_head"] | None


def folded_weights(model: Transformer) -> FoldedWeights:
    """The model's stacked weights with each norm's gain folded into the matrices reading it.

    Pre-norm LayerNorm: ``W_Q^h <- centre(diag(ln1.w) W_Q^h)`` (same for ``W_K``, ``W_V``),
    ``W_U <- centre(diag(ln_final.w) W_U)`` and ``W_O^h <- centre(W_O^h)``, where ``centre``
    subtracts the mean over ``d_model``; these equal the weights of
    ``process_weights(model, center_unembed=False)`` (non-shortformer models). RMSNorm: the
    gain only, no centring. No normalization: the model's weights, detached, without copies.
    Raises ``ValueError`` for post-norm models (see the module docstring).
    """
    _check_model(model)
    cfg = model.config
    _check_foldable(cfg)
    with torch.no_grad():
        W_Q, W_K, W_V, W_O = (w.detach() for w in (model.W_Q, model.W_K, model.W_V, model.W_O))
        raw_Q, raw_K = W_Q, W_K
        W_U = model.W_U.detach()
        if cfg.normalization != "none" and cfg.n_layers > 0:
            centre = cfg.normalization == "layernorm"
            gains = torch.stack([block.ln1.w.detach() for block in model.blocks])  # [layer, d_model]
            W_Q, W_K, W_V = (_fold_gain(W, gains[:, None, :, None], centre, dim=-2) for W in (W_Q, W_K, W_V))
            W_U = _fold_gain(W_U, model.ln_final.w.detach()[:, None], centre, dim=0)
            if centre:  # what a head writes along the mean direction is removed by every reader's LayerNorm
                W_O = W_O - W_O.mean(-1, keepdim=True)
        W_pos = model.pos_embed.W_pos.detach() if model.pos_embed is not None else None
        if W_pos is None:
            W_Q_pos = W_K_pos = None
        elif model.positional.qk_only:  # positions are added after ln1: its gain does not touch them
            W_Q_pos, W_K_pos = raw_Q, raw_K
        else:
            W_Q_pos, W_K_pos = W_Q, W_K
    return FoldedWeights(
        W_E=model.W_E.detach(), W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, W_U=W_U, W_pos=W_pos, W_Q_pos=W_Q_pos, W_K_pos=W_K_pos
    )


def process_weights(
    model: Transformer,
    *,
    fold_ln: bool = True,
    center_writing_weights: bool | None = None,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
) -> Transformer:
    """A new model with processed weights computing the same function (see the module docstring's table).

    ``center_writing_weights=None`` means "when exact", i.e. for LayerNorm models; ``True`` on a
    model without LayerNorm raises ``ValueError`` (centring would change its outputs). The input
    model is not modified. The new model is in eval mode on the input's device and dtype.
    """
    _check_model(model)
    cfg = model.config
    for name, value in (("fold_ln", fold_ln), ("center_unembed", center_unembed), ("fold_value_biases", fold_value_biases)):
        if not isinstance(value, bool):
            raise TypeError(f"process_weights: {name} must be True or False, got {value!r}")
    has_layernorm = cfg.normalization == "layernorm"
    if center_writing_weights is None:
        center_writing_weights = has_layernorm
    elif center_writing_weights and not has_layernorm:
        raise ValueError(
            f"process_weights: center_writing_weights=True needs LayerNorm (this model has normalization="
            f"{cfg.normalization!r}); without a mean-subtracting norm on every read, centring changes the outputs. "
            "Leave it at None (centre only when exact) or pass False"
        )
    fold = fold_ln and cfg.normalization != "none"
    if fold:
        _check_foldable(cfg)
        if model.positional.qk_only:
            raise ValueError(
                f"process_weights: cannot fold ln1 into W_Q/W_K of a {cfg.positional} model with normalization: positions "
                "are added after ln1, so the folded gain would rescale them too. Pass fold_ln=False, or use "
                "circuits.analysis.weights.processing.folded_weights(model), which folds the token path and keeps raw weights for positions"
            )

    with torch.no_grad():
        state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        if cfg.tied_embeddings:
            state["unembed.W_U"] = model.W_U.detach().clone()
        params = _Params(cfg, state)
        if fold:
            _fold_norms(cfg, params)
        if center_writing_weights:
            _centre_writing(cfg, model.positional, params)
        if center_unembed:
            params.set("unembed.W_U", params.get("unembed.W_U") - params.get("unembed.W_U").mean(-1, keepdim=True))
            params.set("unembed.b_U", params.get("unembed.b_U") - params.get("unembed.b_U").mean())
        if fold_value_biases:
            _fold_value_biases(cfg, params)
        new_cfg = cfg.replace(tied_embeddings=False, use_bias=cfg.use_bias or params.needs_bias())
        new_model = Transformer(new_cfg).to(device=model.W_E.device, dtype=model.W_E.dtype)
        new_model.load_state_dict(params.state_for(new_model), strict=True)
    return new_model.eval()


# ---- internals -------------------------------------------------------------------------------


def _check_model(model: object) -> None:
    if not isinstance(model, Transformer):
        raise TypeError(f"expected a circuits.Transformer, got {type(model).__name__}")


def _check_foldable(cfg) -> None:
    if cfg.norm_position == "post" and cfg.normalization != "none":
        raise ValueError(
            f"normalization cannot be folded into the weights of a post-norm model (norm_position='post', "
            f"normalization={cfg.normalization!r}): each norm rescales the whole residual stream rather than one "
            "reader's input. Weight circuits and fold_ln are defined for pre-norm models or normalization='none'"
        )


def _fold_gain(W: Tensor, gain: Tensor, centre: bool, dim: int) -> Tensor:
    """``gain * W`` (gain broadcast along the ``d_model`` axis ``dim``), centred over that axis if asked."""
    W = W * gain
    return W - W.mean(dim, keepdim=True) if centre else W


class _Params:
    """A state dict plus zero biases for the ones the architecture lacks (so folding can fill them)."""

    def __init__(self, cfg, state: dict[str, Tensor]):
        self.cfg = cfg
        self.state = state
        self.extra: dict[str, Tensor] = {}  # biases created here (use_bias=False models)
        ref = state["embed.W_E"]
        self.zeros = lambda *shape: torch.zeros(shape, dtype=ref.dtype, device=ref.device)

    def get(self, name: str) -> Tensor:
        if name in self.state:
            return self.state[name]
        if name not in self.extra:
            self.extra[name] = self.zeros(*_bias_shape(self.cfg, name))
        return self.extra[name]

    def set(self, name: str, value: Tensor) -> None:
        if name in self.state:
            self.state[name] = value
        else:
            self.extra[name] = value

    def needs_bias(self) -> bool:
        return any(bool(value.any()) for value in self.extra.values())

    def state_for(self, new_model: Transformer) -> dict[str, Tensor]:
        """Every entry of ``new_model.state_dict()``, from ours (or zeros where the old model had no such bias)."""
        out = {}
        for name, value in new_model.state_dict().items():
            if name in self.state:
                out[name] = self.state[name]
            elif name in self.extra:
                out[name] = self.extra[name]
            else:
                assert name.rsplit(".", 1)[-1].startswith("b"), name
                out[name] = torch.zeros_like(value)
        return out


def _bias_shape(cfg, name: str) -> tuple[int, ...]:
    leaf = name.rsplit(".", 1)[-1]
    shapes = {
        "b_Q": (cfg.n_heads, cfg.d_head_),
        "b_K": (cfg.n_kv_heads_, cfg.d_head_),
        "b_V": (cfg.n_kv_heads_, cfg.d_head_),
        "b_O": (cfg.d_model,),
        "b_in": (cfg.d_mlp_,),
        "b_out": (cfg.d_model,),
        "b_U": (cfg.d_vocab_out_,),
    }
    return shapes[leaf]


def _fold_reader(params: _Params, norm: str, readers: list[tuple[str, str | None]], centre: bool, d_model_dim: int) -> None:
    """Fold norm ``norm`` (``w``, ``b``) into each (weight, bias) pair that reads its output, then reset the norm."""
    w = params.get(f"{norm}.w")
    b = params.state.get(f"{norm}.b")
    for weight_name, bias_name in readers:
        W = params.get(weight_name)
        if b is not None:
            shift = torch.tensordot(b, W, dims=([0], [d_model_dim]))  # b @ W, per head if W has a head axis
            if bias_name is None:
                if bool(shift.any()):
                    raise ValueError(
                        f"process_weights: cannot fold {norm}.b into {weight_name}: it has no bias parameter "
                        f"(the gated MLP's gate has none). Pass fold_ln=False, or use an RMSNorm model"
                    )
            else:
                params.set(bias_name, params.get(bias_name) + shift)
        shape = [1] * W.ndim
        shape[d_model_dim] = -1
        params.set(weight_name, _fold_gain(W, w.reshape(shape), centre, dim=d_model_dim))
    params.set(f"{norm}.w", torch.ones_like(w))
    if b is not None:
        params.set(f"{norm}.b", torch.zeros_like(b))


def _fold_norms(cfg, params: _Params) -> None:
    centre = cfg.normalization == "layernorm"
    for layer in range(cfg.n_layers):
        attn = f"blocks.{layer}.attn"
        _fold_reader(params, f"blocks.{layer}.ln1", [(f"{attn}.W_{x}", f"{attn}.b_{x}") for x in "QKV"], centre, d_model_dim=1)
        if cfg.has_mlp:
            mlp = f"blocks.{layer}.mlp"
            readers = [(f"{mlp}.W_in", f"{mlp}.b_in")] + ([(f"{mlp}.W_gate", None)] if cfg.act_fn == "swiglu" else [])
            _fold_reader(params, f"blocks.{layer}.ln2", readers, centre, d_model_dim=0)
    if cfg.n_layers > 0:
        _fold_reader(params, "ln_final", [("unembed.W_U", "unembed.b_U")], centre, d_model_dim=0)


def _centre_writing(cfg, positional: PositionalScheme, params: _Params) -> None:
    """Subtract the ``d_model`` mean from everything written to the residual stream (exact under LayerNorm)."""
    names = ["embed.W_E"]
    # a learned table in the stream (learned); not sinusoidal's fixed buffer, nor shortformer's table outside the stream
    if positional.in_residual and positional.table_parameter is not None:
        names.append(positional.table_parameter)
    if cfg.n_token_types:
        names.append("token_type_embed.W_token_type")
    for layer in range(cfg.n_layers):
        names += [f"blocks.{layer}.attn.W_O", f"blocks.{layer}.attn.b_O"]
        if cfg.has_mlp:
            names += [f"blocks.{layer}.mlp.W_out", f"blocks.{layer}.mlp.b_out"]
    for name in names:
        value = params.get(name)
        params.set(name, value - value.mean(-1, keepdim=True))


def _fold_value_biases(cfg, params: _Params) -> None:
    group = cfg.n_heads // cfg.n_kv_heads_
    for layer in range(cfg.n_layers):
        attn = f"blocks.{layer}.attn"
        b_V = params.get(f"{attn}.b_V").repeat_interleave(group, dim=0)  # [head, d_head]
        W_O = params.get(f"{attn}.W_O")  # [head, d_head, d_model]
        params.set(f"{attn}.b_O", params.get(f"{attn}.b_O") + torch.einsum("hd,hdm->m", b_V, W_O))
        params.set(f"{attn}.b_V", torch.zeros_like(params.get(f"{attn}.b_V")))
