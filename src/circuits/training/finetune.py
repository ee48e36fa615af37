"""Fine-tuning: continue training a model from a checkpoint on new text, with ``circuits.train``.

:func:`finetune` starts from a parent (a checkpoint or run folder of ours, or a
:class:`~circuits.model.Transformer` such as one from :func:`circuits.load_hf`) and trains it
with the ordinary loop (``train(init_from=..., freeze=...)``): checkpoints, resume,
determinism, the divergence guard and the metrics file are those of every run. What differs from
training from scratch:

- the text is tokenized with the **parent's tokenizer** (:class:`ParentTokenizerTask`), never a
  new BPE: a fine-tune must read token ids as its parent did;
- the defaults: peak learning rate ``lr = parent lr * FINETUNE_LR_FACTOR`` (0.1), warmup
  ``steps // 20``, no copied-span augmentation (``repeat_fraction=0``: the new text as it is),
  fewer checkpoints (4 log-spaced + 4 evenly spaced) evaluated on at most 32 windows; batch size and seed
  from the parent;
- provenance: ``run.json`` records the parent's path and the SHA-256 of its weights (the loop's
  ``init_from``) and, for a parent given as a model, the path it came from (``parent_path``).

:class:`TokenBatchesTask` trains on a fixed list of token batches (batch ``t`` at step ``t``): the
same data for two training routes (``circuits.hf.trainer``) and for the benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.training import checkpoint as ckpt
from circuits.training.config import TrainConfig
from circuits.training.data import Corpus
from circuits.training.init import state_dict_sha256
from circuits.training.loop import TrainResult, train
from circuits.training.task import LanguageModelTask, Task
from circuits.training.tokenizer import Tokenizer

__all__ = ["FINETUNE_LR_FACTOR", "ForeignTokenizer", "ParentTokenizerTask", "TokenBatchesTask", "finetune", "finetune_config", "read_parent"]

#: default fine-tuning peak learning rate, as a fraction of the parent's
FINETUNE_LR_FACTOR = 0.1


class ForeignTokenizer(Tokenizer):
    """Another tokenizer (a Hugging Face one) seen as a :class:`Tokenizer` by the token cache: its hash is the SHA-256 of its JSON."""

    def __init__(self, inner: Any):  # noqa: D107 - the base's BPE is not built: every method used is delegated
        self.inner = inner
        self.bos_id = inner.bos_id
        self.vocab_size = inner.vocab_size

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.inner.to_json().encode("utf-8")).hexdigest()

    def encode(self, text: str, bos: bool = True) -> list[int]:
        return self.inner.encode(text, bos=bos)

    def encode_batch(self, texts: Sequence[str], bos: bool = True) -> list[list[int]]:
        return self.inner.encode_batch(texts, bos=bos)

    def to_json(self) -> str:
        return self.inner.to_json()

    def decode(self, ids) -> str:
        return self.inner.decode(ids)


class ParentTokenizerTask(LanguageModelTask):
    """Next-token prediction on ``corpus`` tokenized with a given (the parent's) ``tokenizer`` instead of a new BPE."""

    def __init__(self, corpus: str | os.PathLike | Corpus | None, tokenizer: Any, parent: dict[str, Any] | None = None):
        super().__init__(corpus)
        if tokenizer is None or not hasattr(tokenizer, "encode_batch") or not hasattr(tokenizer, "to_json"):
            raise TypeError(f"the parent's tokenizer must be a circuits Tokenizer or HFTokenizer, got {type(tokenizer).__name__}")
        if getattr(tokenizer, "bos_id", None) is None:
            raise ValueError("the parent's tokenizer has no BOS token; language-model windows start with BOS (give a tokenizer with one)")
        self.fixed = tokenizer if isinstance(tokenizer, Tokenizer) else ForeignTokenizer(tokenizer)
        self.parent = parent

    def check_model(self, model_cfg) -> None:
        super().check_model(model_cfg)
        if self.fixed.vocab_size > model_cfg.d_vocab:
            raise ValueError(f"the tokenizer has {self.fixed.vocab_size} tokens but the model's d_vocab is {model_cfg.d_vocab}; they come from different models")

    def tokenizer_for(self, corpus: Corpus, model_cfg, train_cfg: TrainConfig, cache_dir: Path | None) -> Tokenizer:
        return self.fixed  # saved with each checkpoint (a Hugging Face tokenizer's own JSON)

    def identity(self) -> dict[str, Any]:
        extra = {"finetune_parent": self.parent} if self.parent is not None else {}
        return {**super().identity(), "tokenizer_hash": self.fixed.hash, **extra}


class TokenBatchesTask(Task):
    """Next-token prediction on fixed token batches: ``batches[step % len(batches)]`` at each step; ``val`` is the evaluation."""

    name = "token_batches"

    def __init__(self, batches: Sequence[torch.Tensor], val: torch.Tensor | None = None, tokenizer: Any = None):
        if not batches or not all(isinstance(b, torch.Tensor) and b.ndim == 2 for b in batches):
            raise ValueError("batches must be a non-empty sequence of [batch, pos] token tensors")
        self.batches, self.val = list(batches), val if val is not None else batches[0]
        self.tokenizer = tokenizer if tokenizer is None or isinstance(tokenizer, Tokenizer) else ForeignTokenizer(tokenizer)

    def identity(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for batch in self.batches:
            digest.update(batch.to(torch.int64).numpy().tobytes())
        return {"task": self.name, "batches_sha256": digest.hexdigest(), "n_batches": len(self.batches)}

    def batch(self, step: int, train_cfg: TrainConfig) -> torch.Tensor:
        return self.batches[step % len(self.batches)]

    def loss(self, model, batch: torch.Tensor) -> torch.Tensor:
        return model.next_token_loss(batch) if isinstance(model, Transformer) else model(batch, return_type="loss")

    def evaluate(self, model: Transformer, device: torch.device) -> dict[str, Any]:
        return {"val_loss": float(model(self.val.to(device), return_type="loss"))}

    def tokens_per_step(self, model_cfg, train_cfg: TrainConfig) -> int:
        return int(self.batches[0].numel())


# ---- the parent ---------------------------------------------------------------------------
def read_parent(path: str | os.PathLike, *, need_tokenizer: bool = True) -> tuple[Path, dict[str, Any], Tokenizer | None]:
    """``(checkpoint folder, its config.json, its tokenizer)`` of a parent checkpoint or run folder, with clear errors.

    With ``need_tokenizer=False`` a tokenizer that is not a circuits BPE (a Hugging Face one saved
    by a fine-tune of a ``load_hf`` model) gives ``None`` instead of an error.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"finetune: the parent checkpoint {path} does not exist; give a checkpoint or run folder written by `circuits train`")
    folder = ckpt.resolve_checkpoint(path)
    config = ckpt.read_config(folder)
    try:
        tokenizer = Tokenizer.load(folder / ckpt.TOKENIZER_FILE)
    except (ValueError, FileNotFoundError):
        if need_tokenizer:
            raise
        tokenizer = None
    return folder, config, tokenizer


def finetune_config(parent_train: TrainConfig | None, *, steps: int, lr: float | None = None, batch_size: int | None = None,
                    seed: int | None = None, **changes: Any) -> TrainConfig:
    """The fine-tune's :class:`TrainConfig`: the parent's (or the defaults) with the fine-tuning defaults of the module docstring."""
    base = parent_train or TrainConfig(steps=steps, batch_size=batch_size or 16, lr=1e-3)
    fields = dict(
        steps=steps, lr=lr if lr is not None else base.lr * FINETUNE_LR_FACTOR, batch_size=batch_size or base.batch_size,
        seed=base.seed if seed is None else seed, warmup_steps=steps // 20, repeat_fraction=0.0,
        n_log_checkpoints=4, n_linear_checkpoints=4, eval_windows=min(base.eval_windows, 32), tokenizer_train_chars=None,
    )
    return dataclasses.replace(base, **{**fields, **changes})


def finetune(
    parent: str | os.PathLike | Transformer,
    *,
    out_dir: str | os.PathLike,
    steps: int,
    corpus: str | os.PathLike | Corpus | None = None,
    freeze: Sequence[str] = (),
    lr: float | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    parent_path: str | os.PathLike | None = None,
    train_changes: dict[str, Any] | None = None,
    task: Task | None = None,
    tokenizer: Any = None,
    **train_kwargs: Any,
) -> TrainResult:
    """Fine-tune ``parent`` on ``corpus`` (default: the standard library) for ``steps`` steps into ``out_dir``.

    ``parent`` is a checkpoint or run folder of ours (its newest checkpoint), or a model (e.g.
    ``circuits.load_hf(folder)``; its ``tokenizer`` is used, and ``parent_path`` names where it
    came from). ``freeze`` holds ``fnmatch`` patterns over parameter names (``"embed.*"``,
    ``"blocks.0.*"``; one that matches nothing is a ``ValueError``). ``lr`` defaults to a tenth of
    the parent's. ``train_changes`` sets other :class:`TrainConfig` fields; ``task`` replaces the
    language-model task (its data, e.g. a classification task); ``tokenizer`` replaces the parent's
    (e.g. the ``HFTokenizer`` of a fine-tuned ``load_hf`` model); ``train_kwargs`` go to
    :func:`circuits.train` (``resume``, ``device``, ``cache_dir``, ``progress``, ``compiled``).
    """
    if isinstance(parent, Transformer):
        model_cfg, parent_train, tokenizer = parent.config, None, tokenizer or getattr(parent, "tokenizer", None)
        init_from: Any = {name: tensor.detach().cpu() for name, tensor in parent.state_dict().items()}
        record = {"path": str(parent_path) if parent_path is not None else None, "sha256": state_dict_sha256(init_from)}
    elif isinstance(parent, (str, os.PathLike)):
        folder, config, own = read_parent(parent, need_tokenizer=tokenizer is None and task is None)
        tokenizer = tokenizer or own
        model_cfg = TransformerConfig.from_dict(config["model"])
        parent_train = TrainConfig.from_dict(config["train"]) if isinstance(config.get("train"), dict) else None
        init_from, record = folder, None  # the loop records the folder and the SHA-256 of its weights
    else:
        raise TypeError(f"parent must be a checkpoint folder or a circuits.Transformer, got {type(parent).__name__}")
    train_cfg = finetune_config(parent_train, steps=steps, lr=lr, batch_size=batch_size, seed=seed, **(train_changes or {}))
    if task is None:
        task = ParentTokenizerTask(corpus, tokenizer, parent=record)
    elif corpus is not None:
        raise ValueError("pass either task= or corpus= to finetune, not both")
    return train(model_cfg, train_cfg, out_dir=out_dir, task=task, init_from=init_from, freeze=tuple(freeze), **train_kwargs)
