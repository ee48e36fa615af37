"""Small helpers shared by the experiments: number formatting for captions and claims,
the fixed evaluation text of a zoo model, a banded ICL score, and the training-data note of a section.

Figure builders live in :mod:`circuits.experiments.plots` (the one plotting module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}g}" if abs(float(value)) < 1000 else f"{float(value):,.0f}"


# ---- evaluation text ---------------------------------------------------------------------------
def eval_tokens(zoo, name: str, tokenizer, n_windows: int) -> torch.Tensor:
    """``n_windows`` fixed, evenly spaced validation windows (BOS first) of preset ``name``'s corpus split, ``[batch, n_ctx]``."""
    from circuits.training.data import eval_windows, get_tokens

    model_cfg, train_cfg = zoo.configs(name)
    data = get_tokens(zoo.corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=zoo.cache_dir)
    return eval_windows(data.val, model_cfg.n_ctx, n_windows, data.bos_id)


def icl_bands(n_pos: int) -> tuple[list[int], list[int], str]:
    """Token-index bands for a low-variance ICL score: around the paper's 500 and 50, scaled to ``n_pos``.

    The paper's score is the loss at index 500 minus the loss at index 50 averaged over 10,000
    examples; with a few dozen examples a single index is too noisy, so we average the loss over
    a few neighbouring indices of each (late: the last ``max(2, n_pos // 16)`` indices up to the
    scaled 500; early: the scaled 50 plus or minus ``max(1, n_pos // 64)``).
    """
    from circuits.analysis.activations.icl import icl_indices

    idx = icl_indices(n_pos)
    w_late, w_early = max(2, n_pos // 16), max(1, n_pos // 64)
    late = list(range(max(idx.early + 2 * w_early + 1, idx.late - w_late + 1), idx.late + 1))
    early = list(range(max(1, idx.early - w_early), min(idx.early + w_early, n_pos - 1) + 1))
    note = (
        f"{idx.note}. The ICL score here is the mean loss over token indices {late[0]}-{late[-1]} minus the mean loss over "
        f"indices {early[0]}-{early[-1]} (bands around the scaled indices, to average out the noise of a small evaluation set); "
        "negative when later tokens are easier, and |ICL| is plotted."
    )
    return late, early, note


def band_icl(per_position_loss: np.ndarray, late: Sequence[int], early: Sequence[int]) -> np.ndarray | float:
    """ICL score(s) from per-position losses ``[..., pos - 1]`` (entry ``i - 1`` = loss of predicting token ``i``)."""
    loss = np.asarray(per_position_loss, dtype=float)
    return loss[..., [i - 1 for i in late]].mean(-1) - loss[..., [i - 1 for i in early]].mean(-1)


# ---- figures -----------------------------------------------------------------------------------
def training_data_note(zoo, preset: str) -> str | None:
    """One sentence on what the corpus models were trained on (read from ``preset``'s training config), for section notes."""
    if zoo is None:
        return None
    _, train_cfg = zoo.configs(preset)
    if train_cfg.repeat_fraction <= 0:
        return f"{preset} trains on plain corpus windows ({train_cfg.steps} steps of {train_cfg.batch_size})."
    return (f"{preset} and the other corpus models train {train_cfg.steps} steps of {train_cfg.batch_size} windows with "
            f"repeat_fraction={train_cfg.repeat_fraction:g}: that share of each batch's windows gets a span of its own text copied "
            "to a later offset, source and copy at random offsets after natural text, so only content matching (induction) "
            "predicts the copy. Evaluation uses plain corpus windows; the corpus-only control attn-only-2l-corpus shows what the "
            "augmentation changes (README, 'Presets').")
