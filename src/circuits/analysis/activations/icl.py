"""In-context learning: the ICL score, per-token loss vectors, and both over a sequence of checkpoints.

**ICL score** (In-context Learning paper, "Key Concepts"): mean loss at a late token index minus
mean loss at an early one, over a fixed evaluation set; negative when later tokens are easier.
The paper uses indices 500 and 50 of 512-token examples. *Index convention*: index ``i`` is the
0-based position of the *predicted* token, so its loss is ``per_token_loss[:, i - 1]`` (the
prediction made at position ``i - 1``). When the sequences are too short for index 500,
:func:`icl_indices` scales both indices by ``n_pos / 512`` and says so in its ``note``.

**Per-token loss vectors** (the paper's PCA analysis): for a fixed sample of (example, index)
pairs, the loss of each; :func:`sample_token_indices` draws one index per example from a seed,
so every checkpoint is evaluated on the same pairs.

:func:`checkpoint_metrics` computes all of these, plus previous-token, induction and
prefix-matching scores, for an iterable of models or ``(step, model)`` pairs in one call (models
are used one at a time, so a generator that loads checkpoints lazily keeps one in memory). It can
keep every window's losses and score every probe row, for bootstrap intervals
(:mod:`circuits.analysis.uncertainty`).

**Per window** (the units a bootstrap resamples): :func:`window_icl` is each window's banded ICL
score; :func:`log_index_weights` turns a per-position loss into its slope against ln(index)
(linear, so it applies to each window as well as to the mean); :func:`log_index_start` says
where that slope starts (the paper's token 50, or its scaled index in short contexts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.common import HooksForBatch, check_model, token_batches
from circuits.analysis.activations.per_sequence import RowTargets, row_scores
from circuits.analysis.activations.scores import (
    PATTERN_TARGETS,
    induction_scores,
    per_position_loss,
    prefix_matching_scores,
    stream_pattern_scores,
)

PAPER_LATE, PAPER_EARLY, PAPER_LENGTH = 500, 50, 512


@dataclass(frozen=True)
class ICLIndices:
    """The token indices an ICL score compares; ``scaled`` and ``note`` say whether they differ from the paper's."""

    late: int
    early: int
    scaled: bool
    note: str


def icl_indices(n_pos: int, late: int | None = None, early: int | None = None) -> ICLIndices:
    """Resolve the ICL indices for ``n_pos``-token sequences.

    Given ``late`` and ``early``, they are checked (``1 <= early < late <= n_pos - 1``, else
    ``ValueError``). Left out, they are the paper's 500 and 50 when the sequences are long enough,
    else scaled by ``n_pos / 512`` (``scaled=True``, with a note saying so).
    """
    if isinstance(n_pos, bool) or not isinstance(n_pos, int) or n_pos < 1:
        raise ValueError(f"n_pos must be a positive int, got {n_pos!r}")
    if late is None and early is None:
        if n_pos > PAPER_LATE:
            return ICLIndices(PAPER_LATE, PAPER_EARLY, False, f"paper indices ({PAPER_LATE}, {PAPER_EARLY})")
        factor = n_pos / PAPER_LENGTH
        late, early = min(n_pos - 1, round(PAPER_LATE * factor)), max(1, round(PAPER_EARLY * factor))
        if not early < late:
            raise ValueError(f"sequences of {n_pos} tokens are too short for an ICL score (need two distinct indices >= 1)")
        note = (
            f"ICL indices scaled from the paper's ({PAPER_LATE}, {PAPER_EARLY}) for {PAPER_LENGTH}-token examples "
            f"to ({late}, {early}) for {n_pos}-token sequences (factor {factor:.3g})"
        )
        return ICLIndices(late, early, True, note)
    if late is None or early is None:
        raise ValueError(f"give both late and early (or neither, for the paper's scaled defaults); got late={late}, early={early}")
    for name, value in (("late", late), ("early", early)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int token index, got {value!r}")
    if not 1 <= early < late:
        raise ValueError(f"ICL indices need 1 <= early < late, got early={early}, late={late}")
    if late > n_pos - 1:
        raise ValueError(
            f"ICL index late={late} needs sequences of at least {late + 1} tokens, got {n_pos}; "
            f"use a smaller index (at most {n_pos - 1}) or leave late/early out to scale the paper's indices"
        )
    return ICLIndices(late, early, False, f"indices ({late}, {early}) as given")


def icl_score(
    model,
    tokens: Int[Tensor, "batch pos"] | Iterable[Tensor],
    late: int | None = None,
    early: int | None = None,
    *,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> float:
    """Mean loss at token index ``late`` minus mean loss at ``early`` over ``tokens`` (negative = in-context learning).

    Indices as in :func:`icl_indices` (left out: the paper's 500/50, scaled to shorter
    sequences; call ``icl_indices(n_pos)`` to see the values and the note).
    """
    loss = per_position_loss(model, tokens, batch_size=batch_size, hooks_for_batch=hooks_for_batch)
    idx = icl_indices(loss.shape[0] + 1, late, early)
    return float(loss[idx.late - 1] - loss[idx.early - 1])


def sample_token_indices(n_examples: int, n_pos: int, seed: int, per_example: int = 1) -> Int[Tensor, "n_pairs 2"]:
    """A fixed sample of ``(example, index)`` pairs: ``per_example`` distinct indices in ``[1, n_pos)`` per example."""
    if n_pos < 2:
        raise ValueError(f"per-token losses need sequences of at least 2 tokens, got n_pos={n_pos}")
    if not 1 <= per_example <= n_pos - 1:
        raise ValueError(f"per_example must be in [1, {n_pos - 1}], got {per_example}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    index = torch.rand(n_examples, n_pos - 1, generator=generator).argsort(-1)[:, :per_example] + 1
    example = torch.arange(n_examples)[:, None].expand(-1, per_example)
    return torch.stack([example.reshape(-1), index.reshape(-1)], dim=-1)


def _pair_losses(per_token: Tensor, pairs: Tensor, row_offset: int) -> tuple[Tensor, Tensor]:
    """Losses of the pairs whose example lies in this batch: (positions in ``pairs``, losses)."""
    rows = pairs[:, 0] - row_offset
    inside = (rows >= 0) & (rows < per_token.shape[0])
    where = inside.nonzero().squeeze(-1)
    return where, per_token[rows[where], pairs[where, 1] - 1]


def per_token_losses(
    model,
    tokens: Int[Tensor, "batch pos"],
    pairs: Int[Tensor, "n_pairs 2"],
    *,
    batch_size: int = 32,
    hooks_for_batch: HooksForBatch | None = None,
) -> Float[Tensor, "n_pairs"]:
    """The loss of predicting ``tokens[example, index]`` for each ``(example, index)`` pair (streamed)."""
    check_model(model)
    tokens = model.check_tokens(tokens)
    _check_pairs(pairs, tokens.shape)
    losses = torch.full((pairs.shape[0],), float("nan"))
    offset = 0
    with torch.no_grad():
        for chunk in token_batches(model, tokens, batch_size):
            extra = list(hooks_for_batch(chunk)) if hooks_for_batch is not None else []
            with model.hooks(fwd_hooks=extra):
                per_token = model(chunk, return_type="per_token_loss").float().cpu()
            where, values = _pair_losses(per_token, pairs.cpu(), offset)
            losses[where] = values
            offset += chunk.shape[0]
    return losses


def _check_pairs(pairs: Tensor, shape: tuple[int, ...]) -> None:
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.is_floating_point:
        raise ValueError(f"pairs must be an integer tensor [n_pairs, 2] of (example, index), got shape {tuple(pairs.shape)}")
    if pairs.numel() == 0:
        return
    if int(pairs[:, 0].min()) < 0 or int(pairs[:, 0].max()) >= shape[0]:
        raise ValueError(f"pair examples must be in [0, {shape[0]}) (the rows of tokens)")
    if int(pairs[:, 1].min()) < 1 or int(pairs[:, 1].max()) >= shape[1]:
        raise ValueError(
            f"pair indices must be in [1, {shape[1]}) (index i is the predicted token; sequences have {shape[1]} tokens)"
        )


# ---- over checkpoints ------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointMetrics:
    """Metrics of a sequence of checkpoints (first axis ``checkpoint``, labelled by ``steps``).

    ``icl``: ICL score on ``tokens`` (indices in ``indices``, with its note when scaled);
    ``loss``: mean next-token loss; ``per_position_loss``: mean loss at each position;
    ``loss_vectors``: per-token losses of the fixed ``pairs`` (for PCA across checkpoints);
    ``previous_token``: on ``tokens``; ``induction`` / ``prefix_matching``: on generated repeated
    random tokens (same seed for every checkpoint; ``None`` when they were not asked for).
    ``window_loss``: the loss of every token of every evaluation window (``keep_window_loss=True``),
    for bootstrap intervals over windows; ``probe_rows[name][kind]``: each probe row's score
    (:func:`circuits.analysis.activations.per_sequence.row_scores`), for intervals over sequences.
    """

    steps: list[int]
    icl: Float[Tensor, "checkpoint"]
    loss: Float[Tensor, "checkpoint"]
    per_position_loss: Float[Tensor, "checkpoint pos_minus_1"]
    loss_vectors: Float[Tensor, "checkpoint n_pairs"]
    pairs: Int[Tensor, "n_pairs 2"]
    previous_token: Float[Tensor, "checkpoint layer head"]
    induction: Float[Tensor, "checkpoint layer head"] | None
    prefix_matching: Float[Tensor, "checkpoint layer head"] | None
    indices: ICLIndices
    window_loss: Float[Tensor, "checkpoint batch pos_minus_1"] | None = None
    probe_rows: dict[str, dict[str, Float[Tensor, "checkpoint row layer head"]]] = field(default_factory=dict)


def checkpoint_metrics(
    models: Iterable[Any],
    tokens: Int[Tensor, "batch pos"],
    *,
    pairs: Int[Tensor, "n_pairs 2"] | None = None,
    late: int | None = None,
    early: int | None = None,
    seed: int = 0,
    induction: dict[str, Any] | None = None,
    prefix_matching: dict[str, Any] | None = None,
    probes: Mapping[str, RowTargets] | None = None,
    keep_window_loss: bool = False,
    batch_size: int = 32,
) -> CheckpointMetrics:
    """ICL score, loss curves, per-token loss vectors and head scores for each model, in one call.

    ``models`` yields models or ``(step, model)`` pairs (steps default to 0, 1, ...). ``pairs``
    defaults to one index per example of ``tokens`` drawn with ``seed``. ``induction`` and
    ``prefix_matching`` are keyword arguments for :func:`circuits.induction_scores` and
    :func:`circuits.prefix_matching_scores` (``seed`` included, so all checkpoints see the same tokens).
    With ``probes`` (name -> :func:`~circuits.analysis.activations.per_sequence.row_targets`),
    each probe row is scored instead (``probe_rows``), and the generated-token scores are
    computed only when their keyword arguments are given. ``keep_window_loss`` keeps every
    window's per-token losses (``window_loss``).
    """
    if not isinstance(tokens, Tensor) or tokens.ndim != 2:
        raise ValueError("tokens must be a fixed [batch, pos] evaluation set (the same tokens for every checkpoint)")
    indices = icl_indices(tokens.shape[1], late, early)
    pairs = sample_token_indices(tokens.shape[0], tokens.shape[1], seed) if pairs is None else pairs
    _check_pairs(pairs, tuple(tokens.shape))
    generated = {"ind": (induction_scores, induction), "pm": (prefix_matching_scores, prefix_matching)}
    if probes is not None:  # the probes (even none) replace the generated-token scores, unless those are asked for explicitly
        generated = {k: v for k, v in generated.items() if v[1] is not None}
    rows: dict[str, list[Tensor]] = {k: [] for k in ("ppl", "vec", "prev", "win", *generated)}
    probe_rows: dict[str, dict[str, list[Tensor]]] = {name: {} for name in probes or {}}
    steps: list[int] = []
    for i, item in enumerate(models):
        step, model = item if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int) else (i, item)
        check_model(model)
        steps.append(step)
        per_position, vector = _loss_and_prev(model, tokens, pairs, batch_size, rows["prev"], rows["win"] if keep_window_loss else None)
        rows["ppl"].append(per_position)
        rows["vec"].append(vector)
        for key, (score, kwargs) in generated.items():
            rows[key].append(score(model, **(kwargs or {})).cpu())
        for name, targets in (probes or {}).items():
            for kind, value in row_scores(model, targets).items():
                probe_rows[name].setdefault(kind, []).append(value)
    if not steps:
        raise ValueError("models is empty: give at least one model or (step, model) pair")
    return _stacked(steps, rows, probe_rows, pairs, indices)


def _stacked(steps: list[int], rows: dict[str, list[Tensor]], probe_rows: dict, pairs: Tensor, indices: ICLIndices) -> CheckpointMetrics:
    """The per-checkpoint rows of :func:`checkpoint_metrics` stacked into a :class:`CheckpointMetrics`."""
    shapes = {tuple(t.shape) for t in rows["prev"]}
    if len(shapes) != 1:
        raise ValueError(f"all checkpoints must have the same layers and heads, got score shapes {sorted(shapes)}")
    per_position_loss = torch.stack(rows["ppl"])
    return CheckpointMetrics(
        steps=steps,
        icl=per_position_loss[:, indices.late - 1] - per_position_loss[:, indices.early - 1],
        loss=per_position_loss.mean(-1),
        per_position_loss=per_position_loss,
        loss_vectors=torch.stack(rows["vec"]),
        pairs=pairs,
        previous_token=torch.stack(rows["prev"]).float(),
        induction=torch.stack(rows["ind"]).float() if "ind" in rows else None,
        prefix_matching=torch.stack(rows["pm"]).float() if "pm" in rows else None,
        indices=indices,
        window_loss=torch.stack(rows["win"]) if rows["win"] else None,
        probe_rows={name: {kind: torch.stack(v) for kind, v in kinds.items()} for name, kinds in probe_rows.items()},
    )


def _loss_and_prev(model, tokens: Tensor, pairs: Tensor, batch_size: int, prev_rows: list, window_rows: list | None) -> tuple[Tensor, Tensor]:
    """One streamed pass: per-position loss, the pairs' losses and previous-token scores (and every window's losses)."""
    total = torch.zeros(tokens.shape[1] - 1, dtype=torch.float64)
    vector = torch.full((pairs.shape[0],), float("nan"))
    state = {"offset": 0, "n": 0}
    windows: list[Tensor] = []

    def on_output(chunk: Tensor, per_token: Tensor) -> None:
        per_token = per_token.float().cpu()
        total.add_(per_token.double().sum(0))
        where, values = _pair_losses(per_token, pairs.cpu(), state["offset"])
        vector[where] = values
        state["offset"] += chunk.shape[0]
        state["n"] += chunk.shape[0]
        if window_rows is not None:
            windows.append(per_token)

    scores = stream_pattern_scores(
        model,
        token_batches(model, tokens, batch_size),
        {"previous_token": PATTERN_TARGETS["previous_token"]},
        on_output=on_output,
        return_type="per_token_loss",
    )
    prev_rows.append(scores["previous_token"].cpu())
    if window_rows is not None:
        window_rows.append(torch.cat(windows))
    return (total / state["n"]).float(), vector


# ---- per evaluation window (for bootstrap intervals over windows) ----------------------------------
def window_icl(window_loss: Float[np.ndarray, "... window pos_minus_1"], late: Sequence[int], early: Sequence[int]) -> Float[np.ndarray, "... window"]:
    """Each window's ICL score: its mean loss over token indices ``late`` minus over ``early`` (index ``i`` = column ``i - 1``).

    The mean over windows is the banded ICL score of the mean per-position loss; one value per
    window is what a bootstrap over windows resamples.
    """
    loss = np.asarray(window_loss, dtype=float)
    for name, idx in (("late", late), ("early", early)):
        if not idx or min(idx) < 1 or max(idx) > loss.shape[-1]:
            raise ValueError(f"{name} indices {list(idx)} must be in [1, {loss.shape[-1]}] (predicted-token indices of {loss.shape[-1] + 1}-token windows)")
    return loss[..., [i - 1 for i in late]].mean(-1) - loss[..., [i - 1 for i in early]].mean(-1)


def log_index_weights(n_pos: int, first: int, last: int | None = None) -> Float[np.ndarray, "pos_minus_1"]:
    """Weights ``w`` with ``loss @ w`` = the least-squares slope of loss against ln(index) over indices ``first..last``.

    ``loss`` is a per-position loss (entry ``i - 1`` = predicting token ``i``); ``last`` defaults to
    ``n_pos - 1``. The slope is linear in the losses, so a window's slope is ``window_loss @ w`` and
    the mean of the windows' slopes is the slope of the mean loss.
    """
    last = n_pos - 1 if last is None else last
    if not 1 <= first < last <= n_pos - 1:
        raise ValueError(f"a log-index slope needs 1 <= first < last <= {n_pos - 1}, got first={first}, last={last}")
    x = np.log(np.arange(first, last + 1, dtype=float))
    w = np.zeros(n_pos - 1)
    w[first - 1 : last] = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    return w


def log_index_start(n_pos: int) -> tuple[int, str]:
    """Where a loss-by-log-index slope starts: the paper's token 50 when one e-fold of context lies beyond it, else the scaled index.

    The In-context Learning paper: before the phase change loss stops improving "beyond token 50"
    (of 512- or 8192-token contexts). A slope against ln(index) needs a range of indices: we use
    index 50 when the context reaches ``e * 50`` (136 tokens), and otherwise the paper's 50 scaled
    like the ICL indices (:func:`icl_indices`: 6 for 64-token windows). Returns the index and a note.
    """
    if n_pos - 1 >= math.ceil(math.e * PAPER_EARLY):
        return PAPER_EARLY, f"beyond token {PAPER_EARLY} (the paper's)"
    first = icl_indices(n_pos).early
    return first, (f"beyond token {first} (the paper's {PAPER_EARLY} scaled to {n_pos}-token windows: a {n_pos}-token context leaves "
                   f"less than one e-fold beyond token {PAPER_EARLY} to fit a slope)")
