"""The views, from plain numbers: attention, values over tokens, logit attribution, a weight-circuit matrix, composition scores.

Each function checks its inputs (``ValueError`` naming the bad shape and what was expected) and
returns a :class:`~circuits.views.page.View`; :mod:`circuits.views.from_model` computes the
numbers from a model. Patterns keep only their causal part (query ``q`` attends to keys ``0..q``);
attention weights are rounded to 3 decimals, other values to 4 (enough for the hover text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from circuits.views.page import View, rounded

__all__ = ["attention", "token_values", "loss_difference", "logit_attribution", "circuit_matrix", "composition", "logit_lens_table",
           "aligned_loss"]


def _array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float) if not isinstance(values, np.ndarray) else values.astype(float)


def attention(tokens: Sequence[str], patterns, labels: Sequence[str] | None = None, *, selected: int | str = 0, title: str = "") -> View:
    """Attention patterns over ``tokens``: ``patterns`` is ``[query_pos, key_pos]`` (one head), ``[head, q, k]`` or ``[layer, head, q, k]``.

    ``labels`` names the heads (default ``L{layer}H{head}``, or ``H{head}`` for ``[head, q, k]``);
    ``selected`` is the head shown large first (an index or a label). Only the causal part
    (``k <= q``) is kept.
    """
    p = _array(patterns, "patterns")
    if p.ndim == 2:
        p, default = p[None], ["head"]
    elif p.ndim == 3:
        default = [f"H{h}" for h in range(p.shape[0])]
    elif p.ndim == 4:
        default = [f"L{l}H{h}" for l in range(p.shape[0]) for h in range(p.shape[1])]
        p = p.reshape(-1, *p.shape[2:])
    else:
        raise ValueError(f"patterns must be [q, k], [head, q, k] or [layer, head, q, k], got shape {p.shape}")
    n = len(tokens)
    if p.shape[1:] != (n, n):
        raise ValueError(f"patterns have query x key shape {p.shape[1:]}, but there are {n} tokens; pass the tokens the patterns were computed on")
    labels = list(labels) if labels is not None else default
    if len(labels) != p.shape[0]:
        raise ValueError(f"{len(labels)} head labels for {p.shape[0]} heads")
    index = labels.index(selected) if isinstance(selected, str) and selected in labels else selected
    if not isinstance(index, int) or not 0 <= index < len(labels):
        raise ValueError(f"selected={selected!r}: no such head; heads are {labels}")
    rows = [[rounded(p[h, q, : q + 1], 3) for q in range(n)] for h in range(p.shape[0])]
    return View({"kind": "attention", "tokens": [str(t) for t in tokens], "labels": labels, "patterns": rows, "selected": index}, title)


def token_values(tokens: Sequence[str], series: Mapping[str, object], *, diverging: Sequence[str] = (), notes: Mapping[str, str] | None = None,
                 title: str = "") -> View:
    """Coloured text: one value per token for each named series (``NaN``/``None`` where a value is undefined, e.g. the first token's loss).

    Series named in ``diverging`` are coloured red (positive) / blue (negative) around 0, the
    others white to blue from their minimum to their maximum; buttons switch between series and
    the hover shows every series' value.
    """
    if not series:
        raise ValueError("token_values needs at least one series, e.g. {'loss': per_token_loss}")
    out = []
    for name, values in series.items():
        v = _array([np.nan if x is None else x for x in values] if isinstance(values, (list, tuple)) else values, name)
        if v.shape != (len(tokens),):
            raise ValueError(f"series {name!r} has shape {v.shape}, expected ({len(tokens)},): one value per token (use aligned_loss for losses)")
        out.append({"name": str(name), "values": rounded(v, 4), "diverging": name in diverging, "note": (notes or {}).get(name, "")})
    unknown = set(diverging) - set(series)
    if unknown:
        raise ValueError(f"diverging names {sorted(unknown)} are not series; series are {list(series)}")
    return View({"kind": "tokens", "tokens": [str(t) for t in tokens], "series": out, "selected": 0}, title)


def aligned_loss(per_token_loss) -> np.ndarray:
    """A ``[pos - 1]`` next-token loss (entry ``i`` predicts token ``i + 1``) shown on the token it predicts: ``[NaN, loss...]``."""
    loss = _array(per_token_loss, "per_token_loss")
    if loss.ndim != 1:
        raise ValueError(f"per_token_loss must be 1-D ([pos - 1]), got shape {loss.shape}")
    return np.concatenate([[np.nan], loss])


def loss_difference(tokens: Sequence[str], loss_a, loss_b, names: tuple[str, str] = ("before", "after"), *, title: str = "") -> View:
    """Per-token loss of two models (or checkpoints) and ``b - a``, on ``tokens``; losses are ``[pos - 1]`` next-token losses.

    The difference is the first series shown (negative, blue: ``b`` predicts the token better).
    """
    a, b = aligned_loss(loss_a), aligned_loss(loss_b)
    diff = f"loss {names[1]} - {names[0]}"
    note = f"blue: lower loss {names[1]} than {names[0]}"
    return token_values(tokens, {diff: b - a, f"loss {names[0]}": a, f"loss {names[1]}": b}, diverging=(diff,), notes={diff: note}, title=title)


def logit_attribution(labels: Sequence[str], values, logit: float, *, position: int, token: str, target: str, tolerance: float = 1e-3,
                      title: str = "") -> View:
    """Direct logit attribution at one position: each component's contribution to the logit of ``target``, ranked by size.

    The contributions must sum to ``logit`` within ``tolerance * max(1, |logit|)`` (``ValueError``
    otherwise: a decomposition that does not add up is not shown); the view repeats the check.
    """
    v = _array(values, "values")
    if v.shape != (len(labels),):
        raise ValueError(f"{len(labels)} component labels for values of shape {v.shape}")
    total, tol = float(v.sum()), tolerance * max(1.0, abs(float(logit)))
    if abs(total - float(logit)) > tol:
        raise ValueError(f"the components sum to {total:.6g}, the logit is {float(logit):.6g} (error above {tol:.2g}): not a complete decomposition")
    return View({"kind": "attribution", "components": [[str(l), x] for l, x in zip(labels, rounded(v, 6))], "logit": rounded(logit, 6),
                 "position": int(position), "token": str(token), "target": str(target), "tolerance": tol}, title)


def circuit_matrix(values, rows: Sequence[str], cols: Sequence[str], *, row_title: str, col_title: str, title: str) -> View:
    """A ``[row, col]`` matrix (e.g. a head's full QK or OV circuit on chosen tokens) as a heatmap with hover, red positive, blue negative."""
    m = _array(values, "values")
    if m.shape != (len(rows), len(cols)):
        raise ValueError(f"values have shape {m.shape}, expected ({len(rows)}, {len(cols)}) for the row and column labels")
    return View({"kind": "matrix", "values": rounded(m, 4), "rows": [str(r) for r in rows], "cols": [str(c) for c in cols],
                 "row_title": row_title, "col_title": col_title, "title": title}, title)


def composition(scores: Mapping[str, object], labels: Sequence[str], *, baseline: Mapping[str, float] | None = None, title: str = "") -> View:
    """Composition scores ``{kind: [layer, head, layer, head]}`` (writer first) as writer x reader matrices, with a click-through to a pair.

    Rows are the heads that write into a later layer, columns the heads that read from an
    earlier one; a click shows the pair's score of every kind (and the random baseline if given).
    """
    if not scores:
        raise ValueError("composition needs at least one kind of scores, e.g. {'K': composition_scores(model, 'K')}")
    arrays = {k: _array(v, k) for k, v in scores.items()}
    first = next(iter(arrays.values()))
    if first.ndim != 4 or first.shape[:2] != first.shape[2:] or any(a.shape != first.shape for a in arrays.values()):
        raise ValueError(f"scores must all be [layer, head, layer, head], got shapes {[a.shape for a in arrays.values()]}")
    n_layers, n_heads = first.shape[:2]
    if len(labels) != n_layers * n_heads:
        raise ValueError(f"{len(labels)} labels for {n_layers * n_heads} heads")
    writers = [i for i in range(n_layers * n_heads) if i // n_heads < n_layers - 1]
    readers = [i for i in range(n_layers * n_heads) if i // n_heads > 0]
    flat = {k: a.reshape(n_layers * n_heads, n_layers * n_heads) for k, a in arrays.items()}
    data = {"kind": "composition", "writers": [labels[i] for i in writers], "readers": [labels[i] for i in readers],
            "scores": {k: [[rounded(f[w, r], 4) if w // n_heads < r // n_heads else None for r in readers] for w in writers] for k, f in flat.items()},
            "baseline": {k: rounded(v, 4) for k, v in (baseline or {}).items()}}
    return View(data, title)


def logit_lens_table(layers: Sequence[str], top: Sequence[Sequence[tuple[str, float]]], *, position: int, token: str, title: str = "") -> View:
    """The logit lens at one position: for each residual stream, its top tokens and their probabilities."""
    if len(layers) != len(top):
        raise ValueError(f"{len(layers)} layer labels for {len(top)} rows of top tokens")
    return View({"kind": "lens", "layers": list(layers), "top": [[[str(t), rounded(p, 4)] for t, p in row] for row in top],
                 "position": int(position), "token": str(token)}, title)
