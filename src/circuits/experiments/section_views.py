"""The interactive views of the report's sections (:mod:`circuits.views`), built from the cached results.

``two_layer``: every head's attention on the first validation window of the corpus, the top
induction head shown first. ``phase_change``: the main model's per-token loss on the same window
at the start and the end of the phase-change window and at the last checkpoint, and their
difference. Results cached before these fields existed have none and give no view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from circuits.experiments.base import View
from circuits.experiments.util import fmt
from circuits.views.builders import aligned_loss, attention, token_values

if TYPE_CHECKING:
    from circuits.experiments.phase_change import Result as PhaseChangeResult
    from circuits.experiments.two_layer import Result as TwoLayerResult

__all__ = ["two_layer_views", "phase_change_views"]


def _label(head: tuple[int, int]) -> str:
    return f"L{head[0]}H{head[1]}"


def two_layer_views(result: TwoLayerResult) -> list[View]:
    """Every head's attention on the text window (empty when the result has no text patterns)."""
    r = result
    if r.text_patterns is None or not r.text_tokens:
        return []
    prev, ind = _label(r.previous_token_head), _label(r.induction_head)
    (pl, ph), (il, ih) = r.previous_token_head, r.induction_head
    view = attention(r.text_tokens, r.text_patterns, selected=ind)
    return [View(
        key="two_layer_text_attention", title="Every head's attention on a window of validation text (interactive)",
        caption=(f"The first validation window of the corpus ({len(r.text_tokens)} tokens), every head of {r.preset}. {prev} is the "
                 f"previous-token head (score {fmt(r.previous_token[pl, ph])} on validation text): its pattern is the sub-diagonal. "
                 f"{ind} is the top induction head (score {fmt(r.induction[il, ih])} on the repeat probe), shown first: where the text "
                 "repeats a token, it attends to the token after that token's earlier occurrence. Click a head to show it, hover a cell "
                 "for the query and key tokens and the weight, click a token for where every head looks from it."),
        view=view,
    )]


def phase_change_views(result: PhaseChangeResult) -> list[View]:
    """The main model's per-token loss on the text window across the phase change (empty when the result has none)."""
    r = result
    if r.text_loss is None or not r.text_tokens or len(r.text_steps) != 3:
        return []
    start, end, last = r.text_steps
    loss = {step: aligned_loss(row) for step, row in zip(r.text_steps, r.text_loss)}
    diff = f"loss at step {end} - step {start}"
    series = {diff: loss[end] - loss[start], f"loss at step {start}": loss[start], f"loss at step {end}": loss[end]}
    if last != end:
        series[f"loss at step {last} (last)"] = loss[last]
    mean_change = float(np.nanmean(loss[end] - loss[start]))
    view = token_values(r.text_tokens, series, diverging=(diff,),
                        notes={diff: "blue: the token is predicted better after the phase-change window than before it"})
    return [View(
        key="phase_change_text_loss", title=f"Per-token loss of {r.main} across the phase change (interactive)",
        caption=(f"The same validation window as the two-layer attention view ({len(r.text_tokens)} tokens). Loss of each token "
                 f"(shown on the token being predicted) at the start (step {start}) and the end (step {end}) of the phase-change "
                 f"window and at the last checkpoint (step {last}); the first series is the change over the window (mean "
                 f"{fmt(mean_change)} nats). Tokens that repeat earlier text are where in-context learning should lower the loss. "
                 "Buttons switch the series; hover a token for every series' value."),
        view=view,
    )]
