"""Positional schemes, one class each, resolved once when the model is built (as masks are).

``TransformerConfig.positional`` stays the user-facing string (``"learned"``, ``"shortformer"``,
``"rotary"``, ``"alibi"``, ``"sinusoidal"``, ``"none"``); :func:`positional_scheme` turns it into
the scheme object once, the model keeps it as ``model.positional``, and ``forward`` and the
analysis functions ask that object instead of comparing strings. What a scheme answers:

========================== ===================================================================
``name`` / ``tl_name``     the config string; TransformerLens's ``positional_embedding_type``
``has_table``              a position table ``W_pos [n_ctx, d_model]`` exists (``pos_embed(cfg)``
                           builds it as the model's ``pos_embed`` module)
``table_parameter``        the table's state-dict name when it is learned (``"pos_embed.W_pos"``),
                           ``None`` for a fixed buffer or no table
``hook_name``              the hook point of the embedded positions (``"hook_pos_embed"``,
                           ``"hook_shortformer_pos_embed"``) or ``None``
``in_residual``            positions are added to the residual stream, so decompositions of it
                           have a ``pos_embed`` term and ``ln1`` reads them (folded ``W_Q``/``W_K``)
``qk_only``                positions are added to the query/key inputs only, after ``ln1``
                           (shortformer); ``place(resid, pos_embed)`` says where they go
``limits_n_ctx``           one embedding per position: sequences longer than ``n_ctx`` are an error
``rotates_qk``             ``rotary(cfg)`` builds each attention layer's q/k rotation
``attention_bias(cfg)``    a module giving the additive score bias ``[1, head, query_pos, key_pos]``
                           for a sequence length (ALiBi), or ``None``
``positional_qk_missing``  why there is no positional QK circuit ``W_pos W_QK W_pos^T`` (``None``
                           when there is one)
``token_qk_missing``       why there is no single token QK matrix ``W_E W_QK W_E^T`` (``None``
                           when there is one)
========================== ===================================================================

Adding a scheme is one new subclass of :class:`PositionalScheme` here (registered in
:data:`SCHEMES`, its name added to ``circuits.config.Positional``) and its tests in
``tests/test_positional.py``; nothing else branches on the name.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from circuits.config import TransformerConfig
from circuits.model.embed import PosEmbed, SinusoidalPosEmbed


class Rotary(nn.Module):
    """Rotary position embedding (Su et al.), GPT-NeoX / LLaMA "rotate half" layout.

    The first ``rotary_dim`` channels of each head are split into two halves ``(x1, x2)``;
    position ``p`` rotates channel pair ``(x1[i], x2[i])`` by angle ``p * base^(-2i/rotary_dim)``.
    The remaining channels pass through unchanged. A query at position ``p`` and a key at
    position ``p'`` then interact through ``R(p - p')`` only: scores depend on relative position.
    """

    def __init__(self, rotary_dim: int, base: float, n_ctx: int):
        super().__init__()
        self.rotary_dim = rotary_dim
        self.base = base
        cos, sin = self.cos_sin(n_ctx, torch.device("cpu"))
        self.register_buffer("cos", cos, persistent=False)  # [n_ctx, rotary_dim]
        self.register_buffer("sin", sin, persistent=False)

    def cos_sin(self, n_pos: int, device: torch.device) -> tuple[Tensor, Tensor]:
        inv_freq = self.base ** (-torch.arange(0, self.rotary_dim, 2, dtype=torch.float64, device=device) / self.rotary_dim)
        angles = torch.outer(torch.arange(n_pos, dtype=torch.float64, device=device), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)  # [pos, rotary_dim]
        return angles.cos().float(), angles.sin().float()

    def table(self, n_pos: int) -> tuple[Tensor, Tensor]:
        if n_pos <= self.cos.shape[0]:
            return self.cos[:n_pos], self.sin[:n_pos]
        return self.cos_sin(n_pos, self.cos.device)

    def forward(
        self, x: Float[Tensor, "batch pos head d_head"], cos: Float[Tensor, "pos rotary_dim"], sin: Float[Tensor, "pos rotary_dim"]
    ) -> Float[Tensor, "batch pos head d_head"]:
        rd = self.rotary_dim
        x_rot, x_pass = x[..., :rd], x[..., rd:]
        x1, x2 = x_rot[..., : rd // 2], x_rot[..., rd // 2 :]
        rotated = torch.cat([-x2, x1], dim=-1)
        cos = cos[:, None, :].to(x.dtype)  # [pos, 1, rotary_dim] broadcasts over batch and head
        sin = sin[:, None, :].to(x.dtype)
        out = x_rot * cos + rotated * sin
        return torch.cat([out, x_pass], dim=-1) if x_pass.shape[-1] else out


def alibi_slopes(n_heads: int) -> Float[Tensor, "head"]:
    """Press et al.'s head slopes: for ``n`` a power of two, ``2^(-8 k / n)`` for ``k = 1..n``.

    Otherwise the slopes of the closest smaller power of two ``m``, followed by every other
    slope of ``2m`` (the reference implementation's rule).
    """
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (k + 1) for k in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        m = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(m) + power_of_two(2 * m)[0::2][: n_heads - m]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: Float[Tensor, "head"], n_pos: int) -> Float[Tensor, "1 head query_pos key_pos"]:
    """``-slope * |query_pos - key_pos|`` (for causal masks only ``key_pos <= query_pos`` matters)."""
    pos = torch.arange(n_pos, device=slopes.device)
    distance = (pos[:, None] - pos[None, :]).abs().to(slopes.dtype)  # [query_pos, key_pos]
    return (-slopes[:, None, None] * distance).unsqueeze(0)


class AlibiBias(nn.Module):
    """ALiBi's score bias for a sequence length; the slopes are a (non-persistent) buffer, so they follow ``.to()``."""

    slopes: Float[Tensor, "head"]

    def __init__(self, n_heads: int):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(self, n_pos: int) -> Float[Tensor, "1 head query_pos key_pos"]:
        return alibi_bias(self.slopes, n_pos)


# ---- the schemes -------------------------------------------------------------------------------


class PositionalScheme:
    """Where position information enters the model. Defaults describe a scheme that adds nothing."""

    name: ClassVar[str]
    tl_name: ClassVar[str]
    has_table: ClassVar[bool] = False
    table_parameter: ClassVar[str | None] = None
    hook_name: ClassVar[str | None] = None
    in_residual: ClassVar[bool] = False
    qk_only: ClassVar[bool] = False
    limits_n_ctx: ClassVar[bool] = False
    rotates_qk: ClassVar[bool] = False
    positional_qk_missing: ClassVar[str | None] = None
    token_qk_missing: ClassVar[str | None] = None

    def pos_embed(self, cfg: TransformerConfig) -> nn.Module | None:
        """The position table module (``W_pos [n_ctx, d_model]``), or ``None``."""
        return None

    def place(
        self, resid: Float[Tensor, "batch pos d_model"], pos_embed: Float[Tensor, "batch pos d_model"]
    ) -> tuple[Float[Tensor, "batch pos d_model"], Float[Tensor, "batch pos d_model"] | None]:
        """``(residual stream, query/key position input)`` once the embedded positions are placed."""
        raise NotImplementedError(f"positional={self.name!r} has no position table to place")

    def rotary(self, cfg: TransformerConfig) -> Rotary | None:
        """The rotation applied to each attention layer's queries and keys, or ``None``."""
        return None

    def attention_bias(self, cfg: TransformerConfig) -> nn.Module | None:
        """A module mapping ``n_pos`` to an additive score bias ``[1, head, query_pos, key_pos]``, or ``None``."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _PositionTable(PositionalScheme):
    """A table of ``n_ctx`` position vectors, added to the residual stream."""

    has_table = True
    hook_name = "hook_pos_embed"
    in_residual = True
    limits_n_ctx = True

    def place(self, resid, pos_embed):
        return resid + pos_embed, None


class LearnedPositions(_PositionTable):
    """GPT-2's learned absolute positions ``W_pos``, added to the residual stream."""

    name = "learned"
    tl_name = "standard"
    table_parameter = "pos_embed.W_pos"

    def pos_embed(self, cfg):
        return PosEmbed(cfg.n_ctx, cfg.d_model)


class SinusoidalPositions(_PositionTable):
    """Vaswani et al.'s fixed sinusoids, added to the residual stream (a buffer: not in the state dict)."""

    name = "sinusoidal"
    tl_name = "standard"

    def pos_embed(self, cfg):
        return SinusoidalPosEmbed(cfg.n_ctx, cfg.d_model)


class ShortformerPositions(_PositionTable):
    """Learned positions added only to the query and key inputs, after ``ln1`` (the Framework paper's setup).

    Positions never enter the residual stream, so the hook is ``hook_shortformer_pos_embed``, not
    ``hook_pos_embed`` (TransformerLens's ``decompose_resid`` adds the latter to the stream).
    """

    name = "shortformer"
    tl_name = "shortformer"
    table_parameter = "pos_embed.W_pos"
    hook_name = "hook_shortformer_pos_embed"
    in_residual = False
    qk_only = True

    def pos_embed(self, cfg):
        return PosEmbed(cfg.n_ctx, cfg.d_model)

    def place(self, resid, pos_embed):
        return resid, pos_embed


class RotaryPositions(PositionalScheme):
    """Rotary embeddings: queries and keys are rotated by their positions (:class:`Rotary`)."""

    name = "rotary"
    tl_name = "rotary"
    rotates_qk = True
    positional_qk_missing = (
        "rotary positions rotate queries and keys, so the position dependence is a function of the "
        "query-key offset inside W_QK; use circuits.rotary_qk_circuit(model, layer, head, offset)"
    )
    token_qk_missing = (
        "a rotary model has no single token QK matrix: queries and keys are rotated by their positions, "
        "so the score depends on the offset query_pos - key_pos. Use circuits.rotary_qk_circuit(model, layer, head, "
        "offset) for one offset"
    )

    def rotary(self, cfg):
        return Rotary(cfg.rotary_dim_, cfg.rotary_base, cfg.n_ctx)


class AlibiPositions(PositionalScheme):
    """ALiBi (Press et al.): the fixed bias ``-slope_h * |query_pos - key_pos|`` added to the scores."""

    name = "alibi"
    tl_name = "alibi"
    positional_qk_missing = (
        "ALiBi adds the fixed bias -slope_h * |query_pos - key_pos| to the scores instead of embedding "
        "positions (see circuits.model.positional.alibi_bias); the token QK circuit is unaffected"
    )

    def attention_bias(self, cfg):
        return AlibiBias(cfg.n_heads)


class NoPositions(PositionalScheme):
    """No positional information (a causal mask still lets a model infer some)."""

    name = "none"
    tl_name = "none"
    positional_qk_missing = "the model has no positional information"


#: config string -> scheme (schemes are stateless: one instance each)
SCHEMES: dict[str, PositionalScheme] = {
    scheme.name: scheme
    for scheme in (
        LearnedPositions(), ShortformerPositions(), RotaryPositions(), AlibiPositions(), SinusoidalPositions(), NoPositions()
    )
}


def positional_scheme(cfg: TransformerConfig) -> PositionalScheme:
    """The scheme object for ``cfg.positional`` (the model resolves it once, as ``model.positional``)."""
    try:
        return SCHEMES[cfg.positional]
    except KeyError:
        raise ValueError(f"positional={cfg.positional!r} is not one of {list(SCHEMES)}") from None
