"""Head scores from activations: how much attention each head puts where a behaviour predicts.

Every score is a ``[layer, head]`` tensor (row ``l``, column ``h`` is head ``L{l}H{h}``; see
:func:`circuits.analysis.common.head_labels`). Attention-pattern scores are computed **streaming**: a hook
on each ``blocks.{l}.attn.hook_pattern`` reduces the batch's pattern to per-head sums and drops it,
so memory does not grow with the number of tokens (``benchmarks/bench_scores_memory.py``).

Definitions (``A[q, k]`` = a head's attention from query position ``q`` to key position ``k``;
every score is a mean over the counted queries of all sequences):

``previous_token``  ``A[q, q-1]`` over queries ``q >= 1`` (position 0 has no choice).
``current_token``   ``A[q, q]`` over ``q >= 1``.
``first_token``     ``A[q, 0]`` over ``q >= 1``.
``duplicate_token`` attention summed over earlier positions holding the same token, over the
                    queries that have one (TransformerLens's duplicate-token pattern).
``induction``       on ``[BOS] + R * n_repeats`` (:func:`circuits.analysis.tasks.repeated_tokens`, period
                    ``T``): ``A[q, q - T + 1]`` (the token after the previous copy) over the queries
                    in repeats 2.. (the Framework paper / ARENA score).
``prefix_matching`` the In-context Learning paper's score: on 25 random tokens repeated 4 times
                    (BOS prepended), attention summed over the tokens after *every* earlier copy,
                    ``sum_m A[q, q - m T + 1]``. The paper's appendix literally says the tokens that
                    *preceded* the earlier copies; we use the ``+1`` offset (the concept's
                    definition, the Framework paper, ARENA and TransformerLens) and offer
                    ``offset=-1`` for the literal reading. With ``n_repeats=2`` it equals ``induction``.
``copying_eval``    the In-context Learning paper's copying evaluator (:func:`copying_eval_scores`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import HooksForBatch, check_model, token_batches
from circuits.analysis.activations.attribution import final_norm_linear
from circuits.analysis.tasks import DEFAULT_BOS, random_tokens, repeated_tokens

PatternScore = Literal["previous_token", "current_token", "first_token", "duplicate_token"]
PATTERN_SCORES: tuple[str, ...] = ("previous_token", "current_token", "first_token", "duplicate_token")


# ---- targets: which (query, key) pairs a score counts ---------------------------------------
def _diagonal_target(tokens: Tensor, offset: int, column: int | None = None) -> tuple[Tensor, int]:
    batch, n_pos = tokens.shape
    if n_pos < 2:
        raise ValueError(f"attention scores need sequences of at least 2 tokens, got {n_pos}")
    target = torch.zeros(n_pos, n_pos, device=tokens.device)
    q = torch.arange(1, n_pos, device=tokens.device)
    target[q, q - offset if column is None else torch.full_like(q, column)] = 1.0
    return target.expand(batch, n_pos, n_pos), batch * (n_pos - 1)


def _duplicate_target(tokens: Tensor) -> tuple[Tensor, int]:
    same = tokens[:, :, None] == tokens[:, None, :]  # [batch, query_pos, key_pos]
    earlier = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=tokens.device).tril(-1)
    target = (same & earlier).float()
    return target, int((target.sum(-1) > 0).sum())


def _repeat_target(tokens: Tensor, period: int, start: int, offset: int, all_copies: bool) -> tuple[Tensor, int]:
    """Keys ``q - m * period + offset`` for queries ``q >= start + period`` (``m = 1``, or every earlier copy)."""
    batch, n_pos = tokens.shape
    target = torch.zeros(n_pos, n_pos, device=tokens.device)
    queries = range(start + period, n_pos)
    for q in queries:
        m = 1
        while q - m * period >= start and (all_copies or m == 1):
            k = q - m * period + offset
            if 0 <= k <= q:
                target[q, k] = 1.0
            m += 1
    return target.expand(batch, n_pos, n_pos), batch * len(queries)


#: attention-pattern score kind -> ``tokens -> (target pattern, number of scored queries)``
PATTERN_TARGETS = {
    "previous_token": lambda tokens: _diagonal_target(tokens, 1),
    "current_token": lambda tokens: _diagonal_target(tokens, 0),
    "first_token": lambda tokens: _diagonal_target(tokens, 0, column=0),
    "duplicate_token": _duplicate_target,
}


# ---- the streaming core ---------------------------------------------------------------------
def stream_pattern_scores(
    model,
    token_stream: Iterable[Tensor],
    targets: dict[str, Callable[[Tensor], tuple[Tensor, int]]],
    hooks_for_batch: HooksForBatch | None = None,
    on_output: Callable[[Tensor, Tensor], None] | None = None,
    return_type: str = "logits",
) -> dict[str, Float[Tensor, "layer head"]]:
    """Mean attention on each score's target keys, accumulated batch by batch inside pattern hooks.

    ``targets[name](tokens) -> (weights [batch, query_pos, key_pos], n_queries)``: the score is
    ``sum(A * weights) / n_queries`` over all batches. Only per-head sums are kept between
    batches. ``hooks_for_batch(tokens)`` adds hooks for that batch (an ablation, for instance);
    ``on_output(tokens, output)`` sees each batch's ``model(tokens, return_type=return_type)``,
    so other statistics can share the forward pass.
    """
    cfg = model.config
    device, n_layers, n_heads = model.W_E.device, cfg.n_layers, cfg.n_heads
    sums = {name: torch.zeros(n_layers, n_heads, dtype=torch.float64, device=device) for name in targets}
    counts = dict.fromkeys(targets, 0)
    current: dict[str, Tensor] = {}

    def accumulate(pattern: Tensor, hook) -> None:
        layer = int(hook.name.split(".")[1])
        for name, weights in current.items():
            sums[name][layer] += einops.einsum(
                pattern, weights.to(pattern.dtype), "batch head query_pos key_pos, batch query_pos key_pos -> head"
            ).double()

    pattern_hooks = [(f"blocks.{l}.attn.hook_pattern", accumulate) for l in range(n_layers)] if targets else []
    with torch.no_grad():
        for tokens in token_stream:
            current.clear()
            for name, make in targets.items():
                weights, n = make(tokens)
                current[name] = weights
                counts[name] += n
            extra = list(hooks_for_batch(tokens)) if hooks_for_batch is not None else []
            with model.hooks(fwd_hooks=extra + pattern_hooks):
                output = model(tokens, return_type=return_type)
            if on_output is not None:
                on_output(tokens, output)
    for name, n in counts.items():
        if n == 0:
            raise ValueError(f"{name} score: no query position in the tokens qualifies (e.g. no repeated token for duplicate_token)")
    dtype = model.W_E.dtype
    return {name: (sums[name] / counts[name]).to(dtype) for name in targets}


def attention_scores(
    model,
    tokens: Int[Tensor, "batch pos"] | Iterable[Tensor],
    kinds: Sequence[str] = PATTERN_SCORES,
    *,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> dict[str, Float[Tensor, "layer head"]]:
    """Several pattern scores of every head in one streaming pass over ``tokens`` (``{kind: [layer, head]}``)."""
    check_model(model)
    unknown = [k for k in kinds if k not in PATTERN_TARGETS]
    if unknown or not kinds:
        raise ValueError(f"unknown score kinds {unknown}; choose from {list(PATTERN_SCORES)}")
    targets = {kind: PATTERN_TARGETS[kind] for kind in kinds}
    return stream_pattern_scores(model, token_batches(model, tokens, batch_size), targets, hooks_for_batch)


def previous_token_scores(model, tokens, *, batch_size: int = 32, hooks_for_batch: HooksForBatch | None = None) -> Float[Tensor, "layer head"]:
    """Mean ``A[q, q-1]`` per head over ``tokens`` (corpus text), ``[layer, head]``."""
    return attention_scores(model, tokens, ("previous_token",), batch_size=batch_size, hooks_for_batch=hooks_for_batch)["previous_token"]


def current_token_scores(model, tokens, *, batch_size: int = 32, hooks_for_batch: HooksForBatch | None = None) -> Float[Tensor, "layer head"]:
    """Mean ``A[q, q]`` per head (queries ``q >= 1``), ``[layer, head]``."""
    return attention_scores(model, tokens, ("current_token",), batch_size=batch_size, hooks_for_batch=hooks_for_batch)["current_token"]


def first_token_scores(model, tokens, *, batch_size: int = 32, hooks_for_batch: HooksForBatch | None = None) -> Float[Tensor, "layer head"]:
    """Mean ``A[q, 0]`` per head (queries ``q >= 1``), ``[layer, head]``."""
    return attention_scores(model, tokens, ("first_token",), batch_size=batch_size, hooks_for_batch=hooks_for_batch)["first_token"]


def duplicate_token_scores(model, tokens, *, batch_size: int = 32, hooks_for_batch: HooksForBatch | None = None) -> Float[Tensor, "layer head"]:
    """Attention to earlier copies of the query's own token, over queries that have one, ``[layer, head]``."""
    return attention_scores(model, tokens, ("duplicate_token",), batch_size=batch_size, hooks_for_batch=hooks_for_batch)["duplicate_token"]


def _repeated_for_model(
    model, seq_len: int, n_repeats: int, batch: int, seed: int, bos: int | None, exclude, distinct: bool, what: str
) -> Tensor:
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 2:
        raise ValueError(f"{what} needs n_repeats >= 2 (a repeat to look back to), got {n_repeats!r}")
    cfg = model.config
    n_pos = (bos is not None) + seq_len * n_repeats
    if n_pos > cfg.n_ctx and model.positional.limits_n_ctx:
        raise ValueError(
            f"{what}: {'1 + ' if bos is not None else ''}seq_len * n_repeats = {n_pos} tokens exceed the model's "
            f"n_ctx={cfg.n_ctx}; choose seq_len <= {(cfg.n_ctx - (bos is not None)) // n_repeats}"
        )
    return repeated_tokens(cfg.d_vocab, seq_len, n_repeats, batch, seed, bos=bos, exclude=exclude, distinct=distinct)


def induction_scores(
    model,
    *,
    seq_len: int = 50,
    n_repeats: int = 2,
    batch: int = 10,
    seed: int = 0,
    bos: int | None = DEFAULT_BOS,
    exclude: Sequence[int] = (),
    distinct: bool = False,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> Float[Tensor, "layer head"]:
    """Mean attention to the token after the previous copy, ``A[q, q - seq_len + 1]``, on ``[BOS] + R * n_repeats``.

    ``R`` is ``seq_len`` random tokens (:func:`circuits.repeated_tokens` with ``seed``, ``bos``
    (default id 0), ``exclude`` and ``distinct``); queries are all positions of repeats 2..n_repeats.
    """
    check_model(model)
    tokens = _repeated_for_model(model, seq_len, n_repeats, batch, seed, bos, exclude, distinct, "induction_scores")
    start = int(bos is not None)
    targets = {"induction": lambda t: _repeat_target(t, seq_len, start, 1, all_copies=False)}
    return stream_pattern_scores(model, token_batches(model, tokens, batch_size), targets, hooks_for_batch)["induction"]


def prefix_matching_scores(
    model,
    *,
    seq_len: int = 25,
    n_repeats: int = 4,
    batch: int = 10,
    seed: int = 0,
    bos: int | None = DEFAULT_BOS,
    exclude: Sequence[int] = (),
    offset: Literal[1, -1] = 1,
    distinct: bool = False,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> Float[Tensor, "layer head"]:
    """The In-context Learning paper's prefix-matching score (defaults: 25 random tokens repeated 4 times, 10 examples).

    Attention summed over the tokens just after (``offset=+1``, our default; see the module
    docstring) or just before (``offset=-1``, the appendix's literal wording) every earlier copy
    of the query's token, averaged over the queries in repeats 2..n_repeats.
    """
    check_model(model)
    if offset not in (1, -1):
        raise ValueError(f"offset must be +1 (token after the earlier copy) or -1 (token before it), got {offset!r}")
    tokens = _repeated_for_model(model, seq_len, n_repeats, batch, seed, bos, exclude, distinct, "prefix_matching_scores")
    start = int(bos is not None)
    targets = {"prefix_matching": lambda t: _repeat_target(t, seq_len, start, offset, all_copies=True)}
    return stream_pattern_scores(model, token_batches(model, tokens, batch_size), targets, hooks_for_batch)["prefix_matching"]


def copying_eval_scores(
    model,
    *,
    seq_len: int = 25,
    batch: int = 10,
    seed: int = 0,
    bos: int | None = DEFAULT_BOS,
    exclude: Sequence[int] = (),
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> Float[Tensor, "layer head"]:
    """The In-context Learning paper's copying evaluator, in ``[-1, 1]`` per head (1 = pure copying).

    On ``[BOS] + seq_len`` random tokens (``exclude`` e.g. the most and least common tokens, as
    the paper does; the BOS is prepended as section 5 of the reference notes advises, the paper
    omitted it by mistake), at each query position ``q >= 1``:

    1. ``d = head output at q`` through the direct path (final norm with its scale frozen from
       this forward pass, then ``W_U``): the head's effect on the logits, ``[d_vocab_out]``;
    2. ``g = ReLU(d - mean(d))``: the raise given to each token;
    3. ``raised = sum_k A[q, k] g[token_k]`` over the non-BOS keys: the raise given to the attended tokens;
    4. ``ratio = raised / (raised + sum(g))``, in ``[0, 0.5]`` (0.5 when only the attended token is raised);
    5. ``score = 4 * ratio - 1``, rescaled to ``[-1, 1]``; averaged over queries and sequences.

    ``nan`` for a head with no direct effect at some query (``d`` constant, so ``g = 0`` and the
    ratio is 0/0: a dead head such as ``W_O = 0``, an all-zero model, or a zero-ablated one); a head
    that raises nothing is not anti-copying. This is our reading of the paper's short description
    (reference notes, section 2.2).
    """
    check_model(model)
    if model.config.norm_position == "post":
        raise ValueError("copying_eval_scores needs the direct path head -> unembedding, which post-norm blocks do not have")
    cfg = model.config
    tokens = random_tokens(cfg.d_vocab, seq_len, batch, seed, bos=bos, exclude=exclude)
    start = int(bos is not None)
    if tokens.shape[1] - start < 1 or tokens.shape[1] < 2:
        raise ValueError("copying_eval_scores needs at least 2 positions")
    total = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64, device=model.W_E.device)
    count = 0
    names = [f"blocks.{l}.attn.hook_{n}" for l in range(cfg.n_layers) for n in ("result", "pattern")]
    if "ln_final.hook_scale" in model.hook_dict:
        names.append("ln_final.hook_scale")
    query_start = max(start, 1)
    with torch.no_grad():
        for chunk in token_batches(model, tokens, batch_size):
            extra = list(hooks_for_batch(chunk)) if hooks_for_batch is not None else []
            with model.hooks(fwd_hooks=extra):
                _, cache = model.run_with_cache(chunk, names_filter=names)
            scale = cache["ln_final.hook_scale"] if "ln_final.hook_scale" in cache else None
            for layer in range(cfg.n_layers):
                ratio = _copying_ratio(model, cache, chunk, layer, start, scale)
                total[layer] += (4 * ratio - 1)[:, query_start:].double().sum((0, 1))
            count += chunk.shape[0] * (chunk.shape[1] - query_start)
    return (total / count).to(model.W_E.dtype)


def _copying_ratio(model, cache, chunk: Tensor, layer: int, start: int, scale: Tensor | None) -> Float[Tensor, "batch query_pos head"]:
    """Steps 1-4 of :func:`copying_eval_scores` for one layer's heads: ``raised / (raised + sum(g))``, ``nan`` where ``g = 0``."""
    result = cache[f"blocks.{layer}.attn.hook_result"]  # [batch, pos, head, d_model]
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, query_pos, key_pos]
    direct = final_norm_linear(model, result, None if scale is None else scale[:, :, None]) @ model.W_U
    raise_ = F.relu(direct - direct.mean(-1, keepdim=True))  # [batch, pos, head, d_vocab_out]
    key_tokens = chunk[:, None, None, start:].expand(-1, raise_.shape[1], model.config.n_heads, -1)
    attended = raise_.gather(-1, key_tokens)  # [batch, query_pos, head, key_pos >= start]
    raised = einops.einsum(
        pattern[..., start:], attended, "batch head query_pos key_pos, batch query_pos head key_pos -> batch query_pos head"
    )
    denominator = raised + raise_.sum(-1)
    ratio = raised / denominator.clamp_min(torch.finfo(raised.dtype).tiny)
    return ratio.masked_fill(denominator <= 0, float("nan"))  # raises nothing: 0/0, no score


# ---- loss on repeated tokens ----------------------------------------------------------------
@dataclass(frozen=True)
class RepeatedTokensLoss:
    """Next-token loss on ``[BOS] + R * n_repeats``: ``per_repeat[r]`` is the mean loss of predicting
    the tokens of repeat ``r`` (repeat 0 is the first, unpredictable one); ``per_position[i]`` the
    mean loss of predicting token ``i + 1``; ``labels`` name the repeats."""

    per_repeat: Float[Tensor, "n_repeats"]
    per_position: Float[Tensor, "pos_minus_1"]
    labels: list[str]
    seq_len: int


def repeated_tokens_loss(
    model,
    *,
    seq_len: int = 50,
    n_repeats: int = 2,
    batch: int = 10,
    seed: int = 0,
    bos: int | None = DEFAULT_BOS,
    exclude: Sequence[int] = (),
    distinct: bool = False,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> RepeatedTokensLoss:
    """Loss on repeated random tokens, first repeat versus later repeats (streamed over batches)."""
    check_model(model)
    tokens = _repeated_for_model(model, seq_len, n_repeats, batch, seed, bos, exclude, distinct, "repeated_tokens_loss")
    per_position = per_position_loss(model, tokens, batch_size=batch_size, hooks_for_batch=hooks_for_batch)
    start = int(bos is not None)
    # loss index i predicts token i + 1; repeat r holds tokens start + r T .. start + (r + 1) T - 1
    per_repeat = []
    for r in range(n_repeats):
        lo, hi = max(start + r * seq_len - 1, 0), start + (r + 1) * seq_len - 1
        per_repeat.append(per_position[lo:hi].mean())
    return RepeatedTokensLoss(torch.stack(per_repeat), per_position, [f"repeat {r}" for r in range(n_repeats)], seq_len)


def per_position_loss(
    model,
    tokens: Int[Tensor, "batch pos"] | Iterable[Tensor],
    *,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> Float[Tensor, "pos_minus_1"]:
    """Mean next-token loss at each position over all sequences (``[i]`` = predicting token ``i + 1``), streamed."""
    check_model(model)
    total, n = None, 0
    with torch.no_grad():
        for chunk in token_batches(model, tokens, batch_size):
            if chunk.shape[1] < 2:
                raise ValueError(f"per-position loss needs sequences of at least 2 tokens, got {chunk.shape[1]}")
            extra = list(hooks_for_batch(chunk)) if hooks_for_batch is not None else []
            with model.hooks(fwd_hooks=extra):
                loss = model(chunk, return_type="per_token_loss").double().sum(0)
            if total is not None and total.shape != loss.shape:
                raise ValueError(f"all token batches must have the same length, got {total.shape[0] + 1} and {loss.shape[0] + 1}")
            total = loss if total is None else total + loss
            n += chunk.shape[0]
    if total is None or n == 0:
        raise ValueError("tokens is empty (no sequences): the mean loss at each position is undefined; give at least one sequence")
    return (total / n).float()
