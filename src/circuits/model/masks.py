"""Attention masks, resolved once when the model is built, and the per-forward attention context.

A mask says which keys each query may read. ``allowed`` returns a boolean tensor
``[batch or 1, 1, query_pos, key_pos]`` (True = may attend). The model combines it with the
padding ``attention_mask`` and with additive biases (ALiBi) into one :class:`AttentionContext`
per forward pass, shared by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


class Mask:
    #: True when ``allowed`` is exactly the lower triangle (lets attention use ``is_causal``).
    plain_causal = False
    #: True when the mask needs a ``prefix_len`` argument at call time.
    needs_prefix = False

    def allowed(self, n_pos: int, device: torch.device, prefix_len: Tensor | None) -> Bool[Tensor, "b 1 query_pos key_pos"] | None:
        raise NotImplementedError


def _causal(n_pos: int, device: torch.device) -> Tensor:
    return torch.ones(n_pos, n_pos, dtype=torch.bool, device=device).tril()


class CausalMask(Mask):
    plain_causal = True

    def allowed(self, n_pos, device, prefix_len):
        return _causal(n_pos, device)[None, None]


class BidirectionalMask(Mask):
    def allowed(self, n_pos, device, prefix_len):
        return None  # every key


class SlidingWindowMask(Mask):
    """Each query sees itself and the ``window - 1`` keys before it."""

    def __init__(self, window: int):
        self.window = window

    def allowed(self, n_pos, device, prefix_len):
        pos = torch.arange(n_pos, device=device)
        offset = pos[:, None] - pos[None, :]  # query_pos - key_pos
        return ((offset >= 0) & (offset < self.window))[None, None]


class PrefixMask(Mask):
    """Prefix-LM: the first ``prefix_len`` positions attend to each other freely, the rest causally."""

    needs_prefix = True

    def allowed(self, n_pos, device, prefix_len):
        pos = torch.arange(n_pos, device=device)
        in_prefix = pos[None, :] < prefix_len[:, None]  # [batch, key_pos]
        return (_causal(n_pos, device)[None] | in_prefix[:, None, :])[:, None]


def make_mask(kind: str, window: int | None) -> Mask:
    if kind == "causal":
        return CausalMask()
    if kind == "bidirectional":
        return BidirectionalMask()
    if kind == "sliding_window":
        assert window is not None
        return SlidingWindowMask(window)
    if kind == "prefix":
        return PrefixMask()
    raise ValueError(f"unknown mask {kind!r}")


@dataclass
class AttentionContext:
    """What every attention layer of one forward pass shares.

    ``bias`` is the additive mask ``[batch or 1, head or 1, query_pos, key_pos]`` (0 or ``-inf``,
    plus ALiBi), or ``None`` when nothing is masked beyond ``is_causal``.
    ``qk_pos`` is the shortformer position embedding added to query and key inputs only.
    ``rotary_cos``/``rotary_sin`` are the rotary tables for this sequence length.
    """

    bias: Float[Tensor, "b h query_pos key_pos"] | None
    is_causal: bool
    n_pos: int
    qk_pos: Float[Tensor, "batch pos d_model"] | None = None
    rotary_cos: Tensor | None = None
    rotary_sin: Tensor | None = None
    _explicit_bias: Tensor | None = None

    def explicit_bias(self, device: torch.device, dtype: torch.dtype) -> Tensor | None:
        """The full additive bias, including the causal triangle that ``is_causal`` leaves implicit."""
        if not self.is_causal:
            return self.bias
        if self._explicit_bias is None:
            causal = _causal(self.n_pos, device)
            self._explicit_bias = torch.zeros(self.n_pos, self.n_pos, device=device, dtype=dtype).masked_fill(~causal, float("-inf"))
        return self._explicit_bias


def build_context(
    mask: Mask,
    n_pos: int,
    device: torch.device,
    dtype: torch.dtype,
    attention_mask: Int[Tensor, "batch pos"] | None,
    prefix_len: Tensor | None,
    alibi: Float[Tensor, "1 head query_pos key_pos"] | None,
) -> AttentionContext:
    """Combine the structural mask, the padding mask and ALiBi into one :class:`AttentionContext`.

    Padding: keys where ``attention_mask == 0`` are hidden from every query. A padded query
    keeps the structural mask (so its row is never empty); its output is meaningless and is
    excluded from the loss.
    """
    if attention_mask is None and alibi is None and mask.plain_causal:
        return AttentionContext(bias=None, is_causal=True, n_pos=n_pos)
    allowed = mask.allowed(n_pos, device, prefix_len)
    if attention_mask is not None:
        valid = attention_mask.bool()
        padding_ok = valid[:, None, None, :] | ~valid[:, None, :, None]  # [batch, 1, query_pos, key_pos]
        allowed = padding_ok if allowed is None else allowed & padding_ok
    bias = None
    if allowed is not None:
        bias = torch.zeros(allowed.shape, device=device, dtype=dtype).masked_fill(~allowed, float("-inf"))
    if alibi is not None:
        alibi = alibi.to(dtype)
        bias = alibi if bias is None else bias + alibi
    return AttentionContext(bias=bias, is_causal=False, n_pos=n_pos)
