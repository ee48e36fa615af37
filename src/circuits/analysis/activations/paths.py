"""Exact path expansion of attention-only models, term importance, and the zero-layer bigram check.

With the attention patterns frozen from a forward pass, an attention-only transformer is linear
in its residual-stream sources, so its logits split exactly into one term per *path*: a source
(the token embedding, or the position embedding when positions are in the residual stream)
followed by a chain of heads in increasing layers, then the unembedding (Framework paper,
"Path Expansion of Logits"). Labels:

- token-embedding paths: ``direct`` (no head; the paper's ``Id (x) W_U W_E``), ``L1H3`` (one head),
  ``L0H7->L1H3`` (a virtual head, V-composition of two heads), ``L0H1->L1H2->L2H0``;
- position-embedding paths (learned or sinusoidal positions only): ``pos_embed``,
  ``pos_embed->L1H3``, ...;
- ``bias``: every path starting at a bias (``b_V``, ``b_O``, norm biases, ``b_U``), summed.

The *order* of a path is its number of heads (``bias`` counts as order 0: with frozen patterns it
is the same at every position when there is no norm, since pattern rows sum to 1).

Normalization: a pre-norm LayerNorm/RMSNorm is made linear by freezing its per-position scale
from the same forward pass, exactly as the patterns are frozen (the paper's treatment of layer
norm as a reweighting of paths); the result records what was frozen in ``frozen``. Models with
MLPs or post-norm blocks raise ``ValueError``: they have no exact path expansion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from circuits.analysis.common import check_model, check_sum, head_label
from circuits.model.norm import LayerNorm, RMSNorm


@dataclass(frozen=True)
class PathExpansion:
    """``terms[c]`` is path ``labels[c]``'s contribution to the logits; ``terms.sum(0) == logits`` to ``max_error``."""

    terms: Float[Tensor, "component batch pos d_vocab_out"]
    labels: list[str]
    orders: list[int]
    logits: Float[Tensor, "batch pos d_vocab_out"]
    max_error: float
    frozen: tuple[str, ...]

    def __getitem__(self, label: str) -> Float[Tensor, "batch pos d_vocab_out"]:
        if label not in self.labels:
            raise KeyError(f"no path {label!r}; paths are {self.labels[:8]}{' ...' if len(self.labels) > 8 else ''}")
        return self.terms[self.labels.index(label)]

    def by_order(self) -> Float[Tensor, "order batch pos d_vocab_out"]:
        """Sum of the terms of each order ``0 .. max order``."""
        orders = torch.tensor(self.orders, device=self.terms.device)
        return torch.stack([self.terms[orders == k].sum(0) for k in range(max(self.orders) + 1)])


def _check_expandable(model) -> None:
    cfg = model.config
    if not cfg.attn_only:
        raise ValueError(
            "path_expansion needs an attention-only model (attn_only=True): MLPs are nonlinear in the residual stream, "
            "so their output has no exact split into paths. Use direct_logit_attribution for models with MLPs."
        )
    if cfg.norm_position == "post":
        raise ValueError(
            "path_expansion supports pre-norm (or norm-free) models; post-norm blocks renormalize the whole residual "
            "stream after every block, which this expansion does not model"
        )
    if cfg.n_token_types:
        raise ValueError("path_expansion does not model token-type embeddings (n_token_types > 0)")


def _norm_linear(norm: nn.Module, scale: Tensor | None) -> tuple[Callable[[Tensor], Tensor], Tensor | None]:
    """The norm with its scale frozen, as (linear map on [..., batch, pos, d_model], additive bias or None)."""
    if isinstance(norm, nn.Identity):
        return (lambda x: x), None
    if isinstance(norm, LayerNorm):
        return (lambda x: (x - x.mean(-1, keepdim=True)) / scale * norm.w), norm.b
    if isinstance(norm, RMSNorm):
        return (lambda x: x / scale * norm.w), None
    raise ValueError(f"path_expansion: unsupported norm {type(norm).__name__}")


def path_expansion(model, tokens: Int[Tensor, "batch pos"], *, atol: float | None = None) -> PathExpansion:
    """Split the logits of an attention-only model (0 or more layers) into one term per path.

    Runs the model once on ``tokens`` to freeze the attention patterns (and norm scales), then
    propagates each source through every chain of heads. Checks that the terms add up to the
    logits of that forward pass and raises :class:`circuits.DecompositionError` when they do not
    (tolerance ``atol``, default 1e-5 in float32 and 1e-10 in float64, times ``max(1, max|logit|)``).
    The number of terms is ``(sources) * prod_l (1 + n_heads) + 1``: meant for small models.
    """
    check_model(model)
    _check_expandable(model)
    tokens = model.check_tokens(tokens)
    cfg = model.config
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(cfg.n_layers)]
    names += [name for name in model.hook_dict if name.endswith("hook_scale")]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=names) if names else (model(tokens), {})
        frozen = ("attention patterns",) + (("norm scales",) if any(n.endswith("hook_scale") for n in names) else ())

        # paths entering the residual stream: key = (source, head labels...)
        paths: dict[tuple[str, ...], Tensor] = {("embed",): model.W_E[tokens]}
        if model.positional.in_residual:
            paths[("pos_embed",)] = model.pos_embed(tokens)
        bias = torch.zeros_like(paths[("embed",)])
        W_V, W_O, b_V = model.W_V, model.W_O, model.b_V
        for l, block in enumerate(model.blocks):
            scale = cache[f"blocks.{l}.ln1.hook_scale"] if f"blocks.{l}.ln1.hook_scale" in cache else None
            linear, norm_bias = _norm_linear(block.ln1, scale)
            pattern = cache[f"blocks.{l}.attn.hook_pattern"]  # [batch, head, query_pos, key_pos]
            keys = list(paths)
            stacked = linear(torch.stack([paths[k] for k in keys] + [bias]))  # [path, batch, pos, d_model]
            if norm_bias is not None:
                stacked[-1] += norm_bias
            v = einops.einsum(stacked, W_V[l], "path batch pos d_model, head d_model d_head -> path batch pos head d_head")
            v[-1] += b_V[l]  # the bias path carries b_V
            z = einops.einsum(pattern, v, "batch head query_pos key_pos, path batch key_pos head d_head -> path batch query_pos head d_head")
            out = einops.einsum(z, W_O[l], "path batch pos head d_head, head d_head d_model -> path batch pos head d_model")
            for i, key in enumerate(keys):
                for h in range(cfg.n_heads):
                    paths[key + (head_label(l, h),)] = out[i, :, :, h]
            bias = bias + out[-1].sum(2)
            if block.attn.b_O is not None:
                bias = bias + block.attn.b_O

        scale = cache["ln_final.hook_scale"] if "ln_final.hook_scale" in cache else None
        linear, norm_bias = _norm_linear(model.ln_final, scale)
        order = sorted(paths, key=lambda key: (len(key), key[0] != "embed", [_layer_head(k) for k in key[1:]]))
        resid = linear(torch.stack([paths[k] for k in order] + [bias]))
        if norm_bias is not None:
            resid[-1] += norm_bias
        terms = resid @ model.W_U
        terms[-1] += model.b_U
    labels = [_path_label(key) for key in order] + ["bias"]
    orders = [len(key) - 1 for key in order] + [0]
    error = check_sum(terms.sum(0), logits, "path expansion", atol)
    return PathExpansion(terms, labels, orders, logits, error, frozen)


def _layer_head(label: str) -> tuple[int, int]:
    layer, head = label[1:].split("H")
    return int(layer), int(head)


def _path_label(key: tuple[str, ...]) -> str:
    source, heads = key[0], list(key[1:])
    if source == "embed":
        return "->".join(heads) if heads else "direct"
    return "->".join([source] + heads)


# ---- term importance ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TermImportance:
    """Loss of the logits rebuilt from path terms (patterns frozen), by order and by term, in nats.

    - ``loss_by_order[k]``: loss with every term of order ``<= k`` (``k = 0``: the direct path,
      position and bias terms; the last entry equals ``full_loss``).
    - ``marginal_by_order[k]``: ``loss_by_order[k - 1] - loss_by_order[k]``, the loss reduction
      from adding order ``k`` (for ``k = 0`` measured from ``uniform_loss = log d_vocab_out``).
    - ``term_added[c]``: loss reduction from adding term ``c`` alone to all lower-order terms.
    - ``term_removed[c]``: loss increase from removing term ``c`` from the full sum.
    Positive numbers mean the term helps.
    """

    labels: list[str]
    orders: list[int]
    loss_by_order: Float[Tensor, "order"]
    marginal_by_order: Float[Tensor, "order"]
    term_added: Float[Tensor, "component"]
    term_removed: Float[Tensor, "component"]
    full_loss: float
    uniform_loss: float

    def table(self) -> list[dict[str, object]]:
        """One row per term: label, order, term_added, term_removed (sorted by order, then by term_added)."""
        rows = [
            {"label": label, "order": order, "term_added": float(a), "term_removed": float(r)}
            for label, order, a, r in zip(self.labels, self.orders, self.term_added, self.term_removed)
        ]
        return sorted(rows, key=lambda row: (row["order"], -row["term_added"]))


def _next_token_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean next-token cross-entropy over ``[..., batch, pos, vocab]`` logits, in the logits' dtype, ``[...]``."""
    log_probs = logits[..., :-1, :].log_softmax(-1)
    target = tokens[:, 1:].expand(*log_probs.shape[:-1])
    return -log_probs.gather(-1, target[..., None]).squeeze(-1).mean((-1, -2))


def term_importance(model, tokens: Int[Tensor, "batch pos"], *, chunk: int = 16) -> TermImportance:
    """The Framework paper's term-importance analysis via the exact path expansion (patterns frozen).

    Equivalent to its iterative procedure (rerun with patterns frozen, heads outputting what
    they output in the previous run: run ``n`` contains the paths of order ``< n``), but computed
    from the terms directly, so each single term's effect comes for free. ``tokens`` need at
    least 2 positions (the loss predicts token ``i + 1`` from position ``i``).
    """
    check_model(model)
    tokens = model.check_tokens(tokens)
    if tokens.shape[1] < 2:
        raise ValueError(f"term_importance needs sequences of at least 2 tokens (it measures next-token loss), got {tokens.shape[1]}")
    expansion = path_expansion(model, tokens)
    terms, orders = expansion.terms, torch.tensor(expansion.orders, device=expansion.terms.device)
    n_orders = int(orders.max()) + 1
    uniform = float(torch.log(torch.tensor(float(terms.shape[-1]), dtype=torch.float64)))
    with torch.no_grad():
        cumulative = []
        running = torch.zeros_like(terms[0])
        for k in range(n_orders):
            running = running + terms[orders == k].sum(0)
            cumulative.append(running)
        cumulative = torch.stack(cumulative)
        loss_by_order = _next_token_loss(cumulative, tokens)
        previous = torch.cat([loss_by_order.new_tensor([uniform]), loss_by_order[:-1]])
        marginal = previous - loss_by_order
        full = cumulative[-1]
        below = [torch.zeros_like(full) if k == 0 else cumulative[k - 1] for k in range(n_orders)]
        added, removed = [], []
        for start in range(0, terms.shape[0], chunk):
            part = terms[start : start + chunk]
            base = torch.stack([below[int(k)] for k in orders[start : start + chunk]])
            added.append(previous[orders[start : start + chunk]] - _next_token_loss(base + part, tokens))
            removed.append(_next_token_loss(full - part, tokens) - loss_by_order[-1])
    return TermImportance(
        labels=expansion.labels,
        orders=expansion.orders,
        loss_by_order=loss_by_order,
        marginal_by_order=marginal,
        term_added=torch.cat(added),
        term_removed=torch.cat(removed),
        full_loss=float(loss_by_order[-1]),
        uniform_loss=uniform,
    )


# ---- zero-layer model vs the corpus bigram table ---------------------------------------------
@dataclass(frozen=True)
class BigramComparison:
    """A zero-layer model's ``softmax(W_E W_U + b_U)`` against the empirical ``P(next | current)``, in nats.

    ``kl`` = sum_a P(a) KL(P_emp(. | a) || P_model(. | a)) over current tokens ``a`` seen in the
    counts; ``model_loss`` = the model's cross-entropy on the counted bigrams;
    ``conditional_entropy`` = H(next | current) of the counts. Identity: ``model_loss =
    conditional_entropy + kl``. ``kl_per_token[a]`` is NaN for tokens never seen as current.
    """

    kl: float
    model_loss: float
    conditional_entropy: float
    kl_per_token: Float[Tensor, "d_vocab"]
    log_probs: Float[Tensor, "d_vocab d_vocab_out"]


def bigram_counts(tokens: Int[Tensor, "*batch pos"], d_vocab: int) -> Int[Tensor, "d_vocab d_vocab_out"]:
    """Counts of (current, next) token pairs in a token stream (pairs never cross rows of a 2-D batch)."""
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"bigram_counts expects a 1-D stream or [batch, pos] tokens with pos >= 2, got shape {tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= d_vocab):
        raise ValueError(f"token ids must be in [0, {d_vocab})")
    pairs = tokens[:, :-1].reshape(-1).long() * d_vocab + tokens[:, 1:].reshape(-1).long()
    return torch.bincount(pairs, minlength=d_vocab * d_vocab).reshape(d_vocab, d_vocab)


def zero_layer_bigram_comparison(model, counts: Int[Tensor, "d_vocab d_vocab_out"]) -> BigramComparison:
    """Compare a zero-layer model with the bigram table of a corpus (``counts`` from :func:`bigram_counts`)."""
    check_model(model)
    cfg = model.config
    if cfg.n_layers != 0:
        raise ValueError(f"zero_layer_bigram_comparison needs a zero-layer model (n_layers=0), got n_layers={cfg.n_layers}")
    if model.positional.in_residual or cfg.n_token_types or cfg.norm_position == "post":
        raise ValueError(
            "this zero-layer model's prediction depends on more than the current token (positions or token types in the "
            "residual stream, or an embedding norm); train it with positional='none' (positions do nothing without attention)"
        )
    if counts.shape != (cfg.d_vocab, cfg.d_vocab_out_):
        raise ValueError(f"counts must have shape [d_vocab, d_vocab_out] = {(cfg.d_vocab, cfg.d_vocab_out_)}, got {tuple(counts.shape)}")
    if counts.dtype.is_floating_point or int(counts.min()) < 0 or int(counts.sum()) == 0:
        raise ValueError("counts must be non-negative integer bigram counts with at least one bigram")
    with torch.no_grad():
        tokens = torch.arange(cfg.d_vocab, device=model.W_E.device)[:, None]
        log_probs = model(tokens)[:, 0].double().log_softmax(-1)  # [d_vocab, d_vocab_out]
    counts = counts.double().to(log_probs.device)
    total = counts.sum()
    row = counts.sum(-1)
    seen = row > 0
    p_emp = counts / row.clamp_min(1)[:, None]
    log_emp = torch.where(counts > 0, p_emp.log(), torch.zeros_like(p_emp))
    kl_rows = (p_emp * (log_emp - log_probs)).sum(-1)
    kl_rows = torch.where(seen, kl_rows, torch.full_like(kl_rows, float("nan")))
    model_loss = -(counts * log_probs).sum() / total
    entropy = -(counts * log_emp).sum() / total
    kl = (row[seen] / total * kl_rows[seen]).sum()
    return BigramComparison(float(kl), float(model_loss), float(entropy), kl_rows, log_probs)
