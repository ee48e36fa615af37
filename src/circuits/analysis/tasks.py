"""Generated inputs for the activation evaluators, each from an explicit seed.

Models do not know their tokenizer, so every generator takes the beginning-of-sequence id as
``bos`` (default ``0``, a documented choice: our tokenizers put their special tokens first; pass
your tokenizer's BOS id, or ``None`` for no BOS). The BOS id, and any ids in ``exclude`` (other
special tokens, or the most and least common tokens as the In-context Learning paper's copying
evaluator does), never appear among the random tokens.

Layout of :func:`repeated_tokens` with ``bos`` set (``T = seq_len``)::

    position  0     1 .. T      T+1 .. 2T     ...   (r-1)T+1 .. rT
    token     BOS   R[0..T-1]   R[0..T-1]     ...   R[0..T-1]

so the copy of position ``p`` in the previous repeat is ``p - T`` and the token after it is at
``p - T + 1`` (the induction target).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

#: BOS id used when none is given (see the module docstring).
DEFAULT_BOS = 0


def allowed_token_ids(d_vocab: int, bos: int | None = DEFAULT_BOS, exclude: Sequence[int] = ()) -> Int[Tensor, "n_allowed"]:
    """The ids random tokens are drawn from: ``[0, d_vocab)`` without ``bos`` and ``exclude``."""
    _check_positive("d_vocab", d_vocab)
    banned = set(int(i) for i in exclude)
    if bos is not None:
        if not 0 <= bos < d_vocab:
            raise ValueError(f"bos={bos} is not a token id of a vocabulary of size d_vocab={d_vocab}; pass an id in [0, {d_vocab}) or bos=None")
        banned.add(int(bos))
    bad = sorted(i for i in banned if not 0 <= i < d_vocab)
    if bad:
        raise ValueError(f"exclude holds ids {bad} outside the vocabulary [0, {d_vocab})")
    allowed = torch.tensor([i for i in range(d_vocab) if i not in banned], dtype=torch.long)
    if allowed.numel() == 0:
        raise ValueError(f"no token ids left to draw from: d_vocab={d_vocab} with bos={bos} and exclude={sorted(banned)}")
    return allowed


def random_tokens(
    d_vocab: int,
    seq_len: int,
    batch: int,
    seed: int,
    bos: int | None = DEFAULT_BOS,
    *,
    exclude: Sequence[int] = (),
    distinct: bool = False,
) -> Int[Tensor, "batch pos"]:
    """``batch`` sequences of ``seq_len`` uniformly random tokens (BOS prepended unless ``bos=None``).

    ``distinct=True`` draws without replacement inside each sequence (no token repeats), which
    makes "the earlier copy of this token" unambiguous in small vocabularies.
    """
    return repeated_tokens(d_vocab, seq_len, 1, batch, seed, bos=bos, exclude=exclude, distinct=distinct)


def repeated_tokens(
    d_vocab: int,
    seq_len: int,
    n_repeats: int,
    batch: int,
    seed: int,
    bos: int | None = DEFAULT_BOS,
    *,
    exclude: Sequence[int] = (),
    distinct: bool = False,
) -> Int[Tensor, "batch pos"]:
    """``[BOS] + R * n_repeats`` for ``batch`` random sequences ``R`` of ``seq_len`` tokens each.

    The tokens the induction, prefix-matching and duplicate-token evaluators use: shape
    ``[batch, (bos is not None) + seq_len * n_repeats]``, on the CPU, drawn with a
    ``torch.Generator`` seeded by ``seed`` (same seed, same tokens). ``R`` is uniform over
    :func:`allowed_token_ids` (``distinct=True``: without replacement inside a sequence).
    """
    _check_positive("seq_len", seq_len)
    _check_positive("n_repeats", n_repeats)
    _check_positive("batch", batch)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    allowed = allowed_token_ids(d_vocab, bos, exclude)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if distinct:
        if seq_len > allowed.numel():
            raise ValueError(
                f"distinct=True needs seq_len <= number of allowed ids ({allowed.numel()}), got seq_len={seq_len}; "
                "use distinct=False or a shorter sequence"
            )
        index = torch.rand(batch, allowed.numel(), generator=generator).argsort(dim=-1)[:, :seq_len]
    else:
        index = torch.randint(0, allowed.numel(), (batch, seq_len), generator=generator)
    block = allowed[index]
    tokens = block.repeat(1, n_repeats)
    if bos is not None:
        tokens = torch.cat([torch.full((batch, 1), bos, dtype=torch.long), tokens], dim=1)
    return tokens


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
