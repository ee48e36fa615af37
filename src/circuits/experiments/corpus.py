"""Token streams and frequencies of the corpus a zoo model was trained on (shared by the zero- and one-layer experiments)."""

from __future__ import annotations

import numpy as np
import torch

from circuits.training.data import TokenData, eval_windows, get_tokens
from circuits.training.zoo import Zoo


def token_data(zoo: Zoo, preset: str, tokenizer) -> TokenData:
    """The training/validation token streams of ``preset``'s corpus under its tokenizer (the cached memmaps)."""
    _, train_cfg = zoo.configs(preset)
    return get_tokens(zoo.corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=zoo.cache_dir)


def stream(array: np.ndarray, max_tokens: int) -> torch.Tensor:
    """The first ``max_tokens`` tokens of a memmapped stream as an int64 tensor."""
    return torch.from_numpy(np.asarray(array[:max_tokens], dtype=np.int64))


def frequent_tokens(tokens: torch.Tensor, d_vocab: int, n: int, exclude: tuple[int, ...] = ()) -> list[int]:
    """The ``n`` most frequent token ids of ``tokens`` (most frequent first), ``exclude`` left out."""
    counts = torch.bincount(tokens.reshape(-1), minlength=d_vocab).double()
    for t in exclude:
        counts[t] = -1
    return [int(i) for i in counts.argsort(descending=True)[:n]]


def validation_windows(zoo: Zoo, preset: str, tokenizer, n_windows: int) -> torch.Tensor:
    """``n_windows`` fixed validation windows of the model's context length (``BOS`` first), as training evaluates."""
    model_cfg, _ = zoo.configs(preset)
    data = token_data(zoo, preset, tokenizer)
    return eval_windows(data.val, model_cfg.n_ctx, n_windows, data.bos_id)


def token_strs(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.token_str(int(i)) for i in ids]
