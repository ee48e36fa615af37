"""What a training run learns from: a :class:`Task` gives the loop its batches, its loss and its evaluation.

:func:`circuits.train` owns everything that does not depend on the data (AdamW, the schedule,
clipping, the divergence guard, checkpoints, resume, locks, the metrics file); a task owns the
data. :class:`LanguageModelTask` (next-token prediction on a corpus, the default) is the one the
presets use; other tasks (modular addition, image classification) subclass :class:`Task`::

    class MyTask(Task):
        name = "my_task"
        def prepare(self, model_cfg, train_cfg, cache_dir): ...      # build or load the data once
        def identity(self): return {"task": self.name, ...}         # what the data is (compared on resume)
        def batch(self, step, train_cfg): ...                        # a pure function of (train_cfg.seed, step)
        def loss(self, model, batch): ...                            # scalar
        def evaluate(self, model, device): return {"val_loss": ...}  # at every checkpoint

Determinism: a batch is a pure function of the training seed and the step (use
:func:`~circuits.training.data.step_generator`), so two runs give bitwise equal weights and a
resumed run ends where the uninterrupted one ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import einops
import torch

from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.training.config import TrainConfig
from circuits.training.data import Corpus, TokenData, check_stream, eval_windows, find_corpus, get_tokenizer, get_tokens, sample_windows, split_corpus, step_generator
from circuits.training.tokenizer import Tokenizer

__all__ = ["Task", "LanguageModelTask", "tokenize_corpus", "compiled_loss", "autocast"]


class Task:
    """The data side of a training run (see the module docstring). Subclasses override what their data needs."""

    name: str = "task"
    tokenizer: Tokenizer | None = None  # saved with every checkpoint when set

    def check_model(self, model_cfg: TransformerConfig) -> None:
        """Refuse, with a ``ValueError`` naming the setting, a model this task cannot train."""

    def prepare(self, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> None:
        """Build or load the data (called once per process before training)."""

    def identity(self) -> dict[str, Any]:
        """JSON: what the data is; stored in ``run.json`` and compared when a run is resumed."""
        return {"task": self.name}

    def data_info(self) -> dict[str, Any]:
        """JSON: a description of the data (sizes, split) recorded in every checkpoint."""
        return {"task": self.name}

    def batch(self, step: int, train_cfg: TrainConfig) -> Any:
        """Step ``step``'s batch (a tensor or a tuple of tensors, first axis = rows): a pure function of the seed and the step."""
        raise NotImplementedError(f"{type(self).__name__} must define batch(step, train_cfg)")

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``model`` (possibly wrapped for data parallelism) on ``batch``."""
        raise NotImplementedError(f"{type(self).__name__} must define loss(model, batch)")

    def evaluate(self, model: Transformer, device: torch.device) -> dict[str, Any]:
        """Metrics at a checkpoint (the model is in eval mode, gradients off); must hold ``val_loss`` (a float)."""
        raise NotImplementedError(f"{type(self).__name__} must define evaluate(model, device)")

    def tokens_per_step(self, model_cfg: TransformerConfig, train_cfg: TrainConfig) -> int:
        """Positions processed per optimizer step (the throughput logs count these)."""
        return train_cfg.batch_size * model_cfg.n_ctx

    def loss_fn(self, model: Transformer, compiled: bool = False) -> Callable[[Any], torch.Tensor]:
        """``batch -> loss`` for single-process training, compiled as one graph when ``compiled``."""
        fn = functools.partial(self.loss, model)
        return torch.compile(fn, fullgraph=True, dynamic=False) if compiled else fn


# ---- language modelling -------------------------------------------------------------------
def tokenize_corpus(corpus: Corpus, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> tuple[Tokenizer, TokenData]:
    """The BPE and the encoded train/validation streams a run with these configs trains on (both cached on disk by content)."""
    tokenizer = LanguageModelTask(corpus).tokenizer_for(corpus, model_cfg, train_cfg, cache_dir)
    return tokenizer, get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=cache_dir)


class LanguageModelTask(Task):
    """Next-token prediction on ``corpus`` (a path, a :class:`~circuits.training.data.Corpus`, or ``None``: the standard library).

    Batches are windows of the training split (with ``train_cfg.repeat_fraction`` of them given a
    copied span); the evaluation is the mean validation loss and its value by position on
    ``train_cfg.eval_windows`` fixed validation windows.
    """

    name = "language_model"

    def __init__(self, corpus: str | os.PathLike | Corpus | None = None):
        self.corpus_spec = corpus
        self.corpus: Corpus | None = None
        self.tokens: TokenData | None = None

    def check_model(self, model_cfg: TransformerConfig) -> None:
        if model_cfg.mask != "causal":
            raise ValueError(f"language-model training needs a causal model; model_cfg.mask={model_cfg.mask!r} is not supported")

    def resolve_corpus(self) -> Corpus:
        """The corpus (found on first use: identity() is read before prepare(), to refuse a mismatched resume early)."""
        if self.corpus is None:
            self.corpus = self.corpus_spec if isinstance(self.corpus_spec, Corpus) else find_corpus(self.corpus_spec)
        return self.corpus

    def tokenizer_for(self, corpus: Corpus, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> Tokenizer:
        """The tokenizer the run encodes ``corpus`` with: a BPE trained on it (cached by content); a subclass may fix one."""
        return get_tokenizer(corpus, model_cfg.d_vocab, val_fraction=train_cfg.val_fraction, max_train_chars=train_cfg.tokenizer_train_chars, cache_dir=cache_dir)

    def prepare(self, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> None:
        corpus = self.resolve_corpus()
        self.tokenizer = self.tokenizer_for(corpus, model_cfg, train_cfg, cache_dir)
        self.tokens = get_tokens(corpus, self.tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=cache_dir)
        check_stream(self.tokens.train, model_cfg.n_ctx, "training")
        check_stream(self.tokens.val, model_cfg.n_ctx, "validation")
        self.n_ctx, self.eval_batch = model_cfg.n_ctx, train_cfg.batch_size
        self.val_fraction = train_cfg.val_fraction
        self.windows = eval_windows(self.tokens.val, model_cfg.n_ctx, train_cfg.eval_windows, self.tokens.bos_id)

    def identity(self) -> dict[str, Any]:
        return {"corpus_fingerprint": self.resolve_corpus().fingerprint}

    def data_info(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus.describe(),
            "split": split_corpus(self.corpus, self.val_fraction).describe(),
            "tokenizer_hash": self.tokenizer.hash,
            "tokenizer_vocab_size": self.tokenizer.vocab_size,
            "n_train_tokens": int(len(self.tokens.train)),
            "n_val_tokens": int(len(self.tokens.val)),
            "token_cache": str(self.tokens.path),
        }

    def batch(self, step: int, train_cfg: TrainConfig) -> torch.Tensor:
        generator = step_generator(train_cfg.seed, step)
        return sample_windows(self.tokens.train, self.n_ctx, train_cfg.batch_size, generator, self.tokens.bos_id, train_cfg.repeat_fraction)

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if isinstance(model, Transformer):
            return model.next_token_loss(batch)  # the forward's loss without its host-side input checks
        return model(batch, return_type="loss")

    def loss_fn(self, model: Transformer, compiled: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
        return compiled_loss(model) if compiled else model.next_token_loss

    @torch.no_grad()
    def evaluate(self, model: Transformer, device: torch.device) -> dict[str, Any]:
        """Mean validation loss (``val_loss``) and its value at each position (``val_loss_by_pos``, entry ``i``: predicting token ``i + 1``)."""
        windows = self.windows
        total = torch.zeros(windows.shape[1] - 1, dtype=torch.float64)
        for start in range(0, len(windows), self.eval_batch):
            batch = windows[start : start + self.eval_batch].to(device)
            with autocast(device):
                per_token = model(batch, return_type="per_token_loss")
            total += per_token.double().sum(dim=0).cpu()
        by_pos = total / len(windows)
        return {"val_loss": float(by_pos.mean()), "val_loss_by_pos": by_pos.tolist()}


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled_loss(model: Transformer) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model.next_token_loss`` compiled as one graph (forward and, through AOTAutograd, backward)."""
    # einops registers a backend per tensor type on first use, and dynamo guards on that registry:
    # register the types the step meets (tensors and parameters) first, or the step compiles twice.
    for tensor in (torch.zeros(1), torch.nn.Parameter(torch.zeros(1))):
        einops.rearrange(tensor, "a -> a")
    return torch.compile(model.next_token_loss, fullgraph=True, dynamic=False)
