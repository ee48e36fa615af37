"""Shared pieces of the training tests: a tiny corpus on disk and tiny prime-sized configs."""

from __future__ import annotations

from pathlib import Path

import torch

from circuits import TrainConfig, TransformerConfig

FRAMEWORK = dict(attn_only=True, normalization="none", use_bias=False, positional="shortformer")


def write_corpus(root: Path, n_files: int = 24) -> Path:
    """``n_files`` small Python-like files in three sub-folders (about 5 KB in all)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        sub = root / f"pkg{i % 3}"
        sub.mkdir(exist_ok=True)
        body = f"def f{i}(x, y):\n    total = x * {i} + y\n    return total - {i % 5}\n\n# end of module {i}\n"
        (sub / f"mod{i:02d}.py").write_text(body * 3)
    return root


def tiny_model_config(**changes) -> TransformerConfig:
    """Prime sizes (``n_heads * d_head != d_model``), vocabulary just above the byte alphabet."""
    return TransformerConfig(**{**dict(n_layers=2, d_model=11, n_heads=3, d_head=5, d_vocab=263, n_ctx=7, **FRAMEWORK), **changes})


def tiny_train_config(**changes) -> TrainConfig:
    base = dict(steps=12, batch_size=4, lr=1e-2, warmup_steps=2, n_log_checkpoints=4, n_linear_checkpoints=3, eval_windows=3, log_every=2, val_fraction=0.25)
    return TrainConfig(**{**base, **changes})


def state_dicts_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
