"""Probe inputs the models never trained on, and the scores measured on them (issue 13, section 3).

Three rules, each explicit so that a claim can state it:

1. **Probe tokens** (:func:`probe_token_ids`): random tokens are drawn only from the
   ``d_vocab // 2`` most frequent tokens of the *training split* (BOS excluded). Rare ids have
   embeddings the model barely trained, and pull scores down for a reason that has nothing to do
   with the circuit. :func:`probe_token_rule` is the sentence a claim shows.
2. **Two layouts of repeated random tokens** (``R`` = ``seq_len`` probe tokens):

   ``"bos"`` (:func:`bos_repeats`), the classic probe of the Framework paper and ARENA::

       [BOS] R R ...                     R starts at position 1 in every row

   ``"natural prefix"`` (:func:`prefixed_repeats`)::

       [BOS] P natural validation tokens  R R ...  (natural text after, never scored)

   with ``P`` drawn per sequence, uniform in ``[min_prefix, max_prefix]``. A head that only
   matches against the window start (the layout of a training augmentation that copies a
   window's first tokens) passes the first and fails the second.
3. **Scores** (:func:`probe_scores`), one forward pass per batch, on the repeats only, for each
   row's own start ``s``: the *induction* score ``A[q, q - T + 1]`` over the queries of repeats
   2..n (``q >= s + T``), the *prefix-matching* score (attention summed over the token after
   every earlier copy, the In-context Learning paper's score; ``prefix_matching_literal`` takes
   the token *before* every earlier copy, the appendix's literal wording), and the mean
   next-token loss of each repeat (repeat ``r`` = predicting its ``T`` tokens). With ``P = 0``
   and ``bos`` set, these equal :func:`circuits.analysis.activations.scores.induction_scores`,
   ``prefix_matching_scores`` and ``repeated_tokens_loss`` on the same tokens.

:func:`uniform_attention_score` is the induction score a head that attends uniformly over the
causal prefix gets on the same probe: the "no induction at all" level (claims that say a score
drops to "about 0" compare against it, :func:`near_zero_threshold`).
:func:`detect_head_scores` runs TransformerLens's ``detect_head`` on text, for comparison with ours.

Typical use (in an experiment's ``compute``)::

    data = token_data(zoo, preset, tok)                        # experiments/corpus.py
    allowed = probe_token_ids(data.train, d_vocab, data.bos_id)
    probe = prefixed_repeats(allowed, data.val, seq_len=20, n_repeats=2, batch=20, seed=0, bos=data.bos_id, n_ctx=64)
    s = probe_scores(model, probe)                             # s.induction [layer, head], s.loss_per_repeat [2]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.activations.scores import stream_pattern_scores
from circuits.analysis.common import HooksForBatch, check_model

__all__ = [
    "RepeatProbe", "ProbeScores", "probe_token_ids", "probe_token_rule", "bos_repeats", "prefixed_repeats", "probe_scores",
    "uniform_attention_score", "near_zero_threshold", "NEAR_ZERO_RULE", "detect_head_scores",
]

#: how "drops to about 0" is read, for claim texts (see :func:`near_zero_threshold`)
NEAR_ZERO_RULE = "about 0 = at most the score of a head attending uniformly over the causal prefix on the same probe"


# ---- which tokens a probe draws -----------------------------------------------------------------
def probe_token_ids(train_tokens: np.ndarray | Tensor, d_vocab: int, bos: int | None, n: int | None = None) -> Int[Tensor, "n"]:
    """The ``n`` (default ``d_vocab // 2``) most frequent ids of ``train_tokens`` (the training split), BOS excluded.

    Most frequent first; ties go to the lower id (a stable sort), so the set is deterministic.
    ``train_tokens`` may be a memmapped stream (counted once with ``numpy.bincount``).
    """
    if isinstance(d_vocab, bool) or not isinstance(d_vocab, int) or d_vocab < 2:
        raise ValueError(f"d_vocab must be an int >= 2, got {d_vocab!r}")
    n = d_vocab // 2 if n is None else n
    available = d_vocab - (bos is not None)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= available:
        raise ValueError(f"n={n!r} probe tokens: choose 1 <= n <= {available} (the ids of d_vocab={d_vocab} without BOS)")
    flat = train_tokens.reshape(-1).cpu().numpy() if isinstance(train_tokens, Tensor) else np.asarray(train_tokens).reshape(-1)
    if flat.size == 0:
        raise ValueError("train_tokens is empty: probe tokens are the most frequent tokens of the training split; pass its token stream")
    if flat.min() < 0 or flat.max() >= d_vocab:
        raise ValueError(f"train_tokens holds ids outside [0, {d_vocab}); pass the stream of the model's own tokenizer")
    counts = np.bincount(flat.astype(np.int64), minlength=d_vocab).astype(np.float64)
    if bos is not None:
        counts[bos] = -1.0
    order = np.argsort(-counts, kind="stable")[:n]
    return torch.from_numpy(order.astype(np.int64))


def probe_token_rule(n_allowed: int, d_vocab: int) -> str:
    """The sentence a claim shows for :func:`probe_token_ids`'s rule."""
    return f"R drawn uniformly from the {n_allowed} most frequent tokens of the training split (d_vocab // 2 of {d_vocab}, BOS excluded)"


# ---- the two layouts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepeatProbe:
    """Rows holding ``n_repeats`` copies of a random ``R`` of ``seq_len`` tokens; row ``b``'s first ``R`` starts at ``starts[b]``."""

    tokens: Int[Tensor, "batch pos"]
    starts: Int[Tensor, "batch"]
    seq_len: int
    n_repeats: int
    layout: str  #: "bos" ([BOS] R R ...) or "natural prefix" ([BOS] P text tokens R R ...)
    text_name: str = "validation tokens"  #: what the prefix is, for :meth:`describe`

    def describe(self) -> str:
        """E.g. ``"[BOS] + P text tokens + R x 2 (T = 20, P in 1..23)"``."""
        reps = " + ".join(["R"] * self.n_repeats) if self.n_repeats <= 3 else f"R x {self.n_repeats}"
        if self.layout == "bos":
            return f"[BOS] + {reps} (T = {self.seq_len})"
        lo, hi = int(self.starts.min()) - 1, int(self.starts.max()) - 1
        return f"[BOS] + P {self.text_name} + {reps} (T = {self.seq_len}, P drawn per sequence, {lo}..{hi} here)"


def _random_blocks(allowed: Tensor, seq_len: int, batch: int, generator: torch.Generator) -> Tensor:
    allowed = torch.as_tensor(allowed, dtype=torch.long).reshape(-1)
    if allowed.numel() == 0:
        raise ValueError("allowed is empty: pass the probe token ids (probe_token_ids)")
    return allowed[torch.randint(0, allowed.numel(), (batch, seq_len), generator=generator)]


def _check_sizes(seq_len: int, n_repeats: int, batch: int, seed: int) -> None:
    for name, value, low in (("seq_len", seq_len, 1), ("n_repeats", n_repeats, 2), ("batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")


def bos_repeats(allowed: Sequence[int] | np.ndarray | Tensor, seq_len: int, n_repeats: int, batch: int, seed: int, bos: int) -> RepeatProbe:
    """The classic layout ``[BOS] + R * n_repeats``, ``R`` uniform over ``allowed`` (a ``torch.Generator`` seeded by ``seed``)."""
    _check_sizes(seq_len, n_repeats, batch, seed)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    block = _random_blocks(torch.as_tensor(allowed), seq_len, batch, generator)
    tokens = torch.cat([torch.full((batch, 1), bos, dtype=torch.long), block.repeat(1, n_repeats)], dim=1)
    return RepeatProbe(tokens, torch.ones(batch, dtype=torch.long), seq_len, n_repeats, "bos")


def prefixed_repeats(
    allowed: Sequence[int] | np.ndarray | Tensor,
    text: np.ndarray | Tensor,
    seq_len: int,
    n_repeats: int,
    batch: int,
    seed: int,
    bos: int,
    n_ctx: int,
    *,
    min_prefix: int = 1,
    max_prefix: int | None = None,
    text_name: str = "validation tokens",
) -> RepeatProbe:
    """``[BOS] + P tokens of text + R * n_repeats + text``, ``n_ctx`` tokens per row, ``P`` uniform in ``[min_prefix, max_prefix]`` per row.

    ``text`` is a validation token stream (1-D); each row copies ``n_ctx - 1`` consecutive tokens
    of it from a random start, then overwrites positions ``1 + P ..`` with the repeats (what follows
    them stays natural text and is never scored). ``max_prefix`` defaults to the most that fits,
    ``n_ctx - 1 - n_repeats * seq_len``. One generator seeded by ``seed`` draws the starts, ``P`` and ``R``.
    ``text_name`` names the prefix in :meth:`RepeatProbe.describe`.
    """
    _check_sizes(seq_len, n_repeats, batch, seed)
    room = n_ctx - 1 - n_repeats * seq_len
    max_prefix = room if max_prefix is None else max_prefix
    if not 0 <= min_prefix <= max_prefix <= room:
        raise ValueError(
            f"prefix lengths {min_prefix}..{max_prefix} do not fit: n_ctx={n_ctx} leaves {room} tokens beside BOS and "
            f"{n_repeats} x {seq_len} repeated tokens; choose 0 <= min_prefix <= max_prefix <= {room} or a shorter seq_len"
        )
    stream = torch.as_tensor(np.asarray(text, dtype=np.int64)).reshape(-1) if not isinstance(text, Tensor) else text.reshape(-1).long()
    if stream.numel() < n_ctx - 1:
        raise ValueError(f"text has {stream.numel()} tokens, fewer than the n_ctx - 1 = {n_ctx - 1} a row needs; pass a longer validation stream")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    text_starts = torch.randint(0, stream.numel() - (n_ctx - 1) + 1, (batch,), generator=generator)
    prefix = torch.randint(min_prefix, max_prefix + 1, (batch,), generator=generator)
    block = _random_blocks(torch.as_tensor(allowed), seq_len, batch, generator).repeat(1, n_repeats)
    body = stream[text_starts[:, None] + torch.arange(n_ctx - 1)[None, :]]
    tokens = torch.cat([torch.full((batch, 1), bos, dtype=torch.long), body], dim=1)
    for row in range(batch):
        start = 1 + int(prefix[row])
        tokens[row, start : start + n_repeats * seq_len] = block[row]
    return RepeatProbe(tokens, 1 + prefix, seq_len, n_repeats, "natural prefix", text_name)


# ---- scores on a probe ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeScores:
    """Scores of every head on a :class:`RepeatProbe` (``[layer, head]``) and the mean loss of each repeat."""

    induction: Float[Tensor, "layer head"]  #: A[q, q - T + 1] over the queries of repeats 2..n
    prefix_matching: Float[Tensor, "layer head"]  #: sum over earlier copies m of A[q, q - mT + 1]
    prefix_matching_literal: Float[Tensor, "layer head"]  #: sum over earlier copies m of A[q, q - mT - 1] (appendix wording)
    loss_per_repeat: Float[Tensor, "n_repeats"]  #: mean loss of predicting the tokens of each repeat


def _probe_target(starts: Tensor, n_pos: int, seq_len: int, n_repeats: int, offset: int, all_copies: bool) -> tuple[Tensor, int]:
    """Per-row target keys ``q - m T + offset`` for the queries of repeats 2..n (``m = 1`` or every earlier copy)."""
    batch = starts.shape[0]
    target = torch.zeros(batch, n_pos, n_pos)
    n_queries = 0
    for row, s in enumerate(starts.tolist()):
        for q in range(s + seq_len, s + n_repeats * seq_len):
            n_queries += 1
            m = 1
            while q - m * seq_len >= s and (all_copies or m == 1):
                k = q - m * seq_len + offset
                if 0 <= k <= q:
                    target[row, q, k] = 1.0
                m += 1
    return target, n_queries


def probe_scores(model, probe: RepeatProbe, *, batch_size: int = 32, hooks_for_batch: HooksForBatch | None = None) -> ProbeScores:
    """Induction and prefix-matching scores of every head and the loss of each repeat on ``probe`` (one pass per batch)."""
    check_model(model)
    if probe.tokens.shape[1] > model.config.n_ctx and model.positional.limits_n_ctx:
        raise ValueError(f"the probe's {probe.tokens.shape[1]} tokens exceed the model's n_ctx={model.config.n_ctx}; build it with a shorter seq_len")
    device, n_pos, T, n = model.W_E.device, probe.tokens.shape[1], probe.seq_len, probe.n_repeats
    current: dict[str, Tensor] = {}
    loss_sums, loss_count = torch.zeros(n, dtype=torch.float64), 0

    def batches():
        for lo in range(0, probe.tokens.shape[0], batch_size):
            current["starts"] = probe.starts[lo : lo + batch_size]
            yield model.check_tokens(probe.tokens[lo : lo + batch_size]).to(device)

    def target(offset: int, all_copies: bool):
        def make(tokens: Tensor) -> tuple[Tensor, int]:
            weights, count = _probe_target(current["starts"], n_pos, T, n, offset, all_copies)
            return weights.to(tokens.device), count
        return make

    def on_output(tokens: Tensor, loss: Tensor) -> None:  # loss[b, i] = loss of predicting token i + 1
        nonlocal loss_count
        for row, s in enumerate(current["starts"].tolist()):
            for r in range(n):
                loss_sums[r] += loss[row, s + r * T - 1 : s + (r + 1) * T - 1].double().mean().cpu()
        loss_count += tokens.shape[0]

    targets = {"induction": target(1, False), "prefix_matching": target(1, True), "prefix_matching_literal": target(-1, True)}
    scores = stream_pattern_scores(model, batches(), targets, hooks_for_batch, on_output=on_output, return_type="per_token_loss")
    return ProbeScores(**{k: v.cpu() for k, v in scores.items()}, loss_per_repeat=(loss_sums / loss_count).float())


def uniform_attention_score(probe: RepeatProbe, *, all_copies: bool = False) -> float:
    """The induction score (``all_copies=True``: prefix-matching score) of a head attending uniformly over ``0..q``.

    At query ``q`` such a head puts ``1 / (q + 1)`` on each key, so its score is the mean over the
    scored queries of (number of target keys) / (q + 1): the level of a head with no induction at all.
    """
    weights, count = _probe_target(probe.starts, probe.tokens.shape[1], probe.seq_len, probe.n_repeats, 1, all_copies)
    per_query = weights.sum(-1) / torch.arange(1, probe.tokens.shape[1] + 1, dtype=weights.dtype)
    return float(per_query.sum() / count)


def near_zero_threshold(probe: RepeatProbe) -> float:
    """The level below which an induction score counts as "about 0" (:data:`NEAR_ZERO_RULE`): :func:`uniform_attention_score`.

    The Framework paper's and ARENA's "drops to about 0" read as: no more attention to the
    induction target than a head without any preference for it gets by spreading its attention
    evenly. One rule for every claim and test that says a score drops to about 0.
    """
    return uniform_attention_score(probe)


# ---- TransformerLens's detector, for comparison -----------------------------------------------------
def detect_head_scores(model, text: Int[Tensor, "batch pos"], kind: str) -> Float[Tensor, "layer head"]:
    """TransformerLens's ``head_detector.detect_head(model, row, kind)`` averaged over the rows of ``text``.

    ``kind`` is ``"previous_token_head"``, ``"induction_head"`` or ``"duplicate_token_head"``.
    ``detect_head`` needs fewer tokens than ``n_ctx``, so rows are cut to ``n_ctx - 1``. Its
    default ("mul") score is the attention mass on the detection pattern divided by the number of
    query rows (all positions, including those with no target), so on natural text it is lower
    than our scores, which average over the queries that have a target.
    """
    from transformer_lens.head_detector import detect_head

    check_model(model)
    kinds = ("previous_token_head", "induction_head", "duplicate_token_head")
    if kind not in kinds:
        raise ValueError(f"kind={kind!r}: choose one of {list(kinds)}")
    rows = text[:, : model.config.n_ctx - 1]
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < 2:
        raise ValueError(f"text must be [batch >= 1, pos >= 2] token ids, got shape {tuple(text.shape)}")
    with torch.no_grad():
        scores = [detect_head(model, row, kind) for row in rows]
    return torch.stack(scores).mean(0)
