"""Modular addition ``a + b mod p`` as token sequences ``a b =``: the grokking task of Nanda et al. (2023).

Tokens ``0 .. p-1`` are the numbers and token ``p`` is ``=``, so a model for this task has
``d_vocab = p + 1`` and ``n_ctx = 3``; the answer ``(a + b) mod p`` is read from the logits at
the ``=`` position, over the ``p`` number classes only (``d_vocab_out = p``: the ``=`` class is
dropped, as in the paper). Every one of the ``p^2`` pairs is one example; a seeded permutation
puts ``round(train_fraction * p^2)`` of them in the training set and the rest in the test set.
Nothing is downloaded: the data is made here, the same on every machine.

:class:`ModularAddition` is the data; :class:`ModularAdditionTask` trains a :class:`~circuits.Transformer`
on it through :func:`circuits.train` (full batch, loss at the last position).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import no_type_check

import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from circuits.training.task import Task

__all__ = ["ModularAddition", "ModularAdditionTask", "grokking_configs", "train_modular", "is_prime", "check_prime", "all_pairs", "pair_tokens", "last_position_logits"]


def is_prime(n: object) -> bool:
    """Whether ``n`` is a prime number (trial division; ``n`` is a small modulus here)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def check_prime(p: object, what: str = "the Fourier analysis") -> None:
    """Raise ``ValueError`` unless ``p`` is prime (``what`` names the step that needs it)."""
    if not is_prime(p):
        below = next(q for q in range(max(p, 3), 1, -1) if is_prime(q)) if isinstance(p, int) and p >= 2 else 2
        raise ValueError(f"p={p!r} is not prime, but {what} needs a prime modulus (Z_p a field); use e.g. p={below} or 113")


def _check_modulus(p: object) -> None:
    if isinstance(p, bool) or not isinstance(p, int):
        raise TypeError(f"p must be an int (the modulus), got {p!r} ({type(p).__name__})")
    if p < 2:
        raise ValueError(f"p={p} must be >= 2 (the modulus of a + b mod p; the paper uses 113)")


def all_pairs(p: int) -> Int[Tensor, "pair 2"]:
    """Every pair ``(a, b)`` of ``Z_p``, ``a``-major: row ``a * p + b`` is ``(a, b)``."""
    _check_modulus(p)
    return torch.cartesian_prod(torch.arange(p), torch.arange(p))


def pair_tokens(pairs: Int[Tensor, "pair 2"], p: int) -> tuple[Int[Tensor, "pair 3"], Int[Tensor, "pair"]]:
    """The sequences ``a b =`` (``=`` is token ``p``) and their labels ``(a + b) mod p``."""
    equals = torch.full((len(pairs), 1), p, dtype=torch.long)
    return torch.cat([pairs.long(), equals], dim=1), (pairs[:, 0] + pairs[:, 1]).long() % p


@no_type_check  # validated by __post_init__ with messages that name the fix
@dataclass(frozen=True)
class ModularAddition:
    """The ``p^2`` sequences ``a b =`` split into train and test sets by a seeded permutation.

    ``p`` must be >= 2 (the Fourier analysis of :mod:`circuits.analysis.grokking` further needs it
    prime: :func:`check_prime`), ``train_fraction`` strictly between 0 and 1 and leave at least one
    pair on each side.
    """

    p: int = 113
    train_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        _check_modulus(self.p)
        f = self.train_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or not 0 < f < 1:
            raise ValueError(f"train_fraction={f!r} must be strictly between 0 and 1 (the paper trains on 0.3 of the pairs)")
        if not 1 <= self.n_train < self.p**2:
            raise ValueError(
                f"train_fraction={f} of the {self.p**2} pairs of p={self.p} leaves {self.n_train} for training and "
                f"{self.p**2 - self.n_train} for testing; both need at least one pair: use a larger p or a fraction nearer 0.5"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be an int >= 0")

    @property
    def n_train(self) -> int:
        return round(self.train_fraction * self.p**2)

    @property
    def d_vocab(self) -> int:
        """Tokens: the ``p`` numbers and ``=``."""
        return self.p + 1

    @property
    def equals_token(self) -> int:
        return self.p

    @cached_property
    def is_train(self) -> torch.Tensor:
        """``[p, p]`` booleans: whether pair ``(a, b)`` is in the training set."""
        order = torch.randperm(self.p**2, generator=torch.Generator().manual_seed(self.seed))
        mask = torch.zeros(self.p**2, dtype=torch.bool)
        mask[order[: self.n_train]] = True
        return mask.view(self.p, self.p)

    def split(self, which: str) -> tuple[Int[Tensor, "pair 3"], Int[Tensor, "pair"]]:
        """Tokens and labels of ``"train"``, ``"test"`` or ``"all"`` (``a``-major order within each)."""
        pairs = all_pairs(self.p)
        if which == "all":
            return pair_tokens(pairs, self.p)
        if which not in ("train", "test"):
            raise ValueError(f"split {which!r} is not one of 'train', 'test', 'all'")
        keep = self.is_train.flatten() if which == "train" else ~self.is_train.flatten()
        return pair_tokens(pairs[keep], self.p)

    def describe(self) -> dict:
        """What the data is, as JSON (stored with runs)."""
        return {"task": "a + b mod p", "p": self.p, "train_fraction": self.train_fraction, "seed": self.seed,
                "n_train": self.n_train, "n_test": self.p**2 - self.n_train, "format": "a b =, = is token p; label (a + b) mod p"}


def last_position_logits(model: torch.nn.Module, tokens: Int[Tensor, "batch pos"]) -> torch.Tensor:
    """``model(tokens)[:, -1]`` computing the last block's MLP (and everything after it) at the last position only.

    Only the last position's logits enter this task's loss, and in the last block nothing at the
    other positions reaches them after attention; skipping them there saves about half of a step
    (the MLP is most of a one-layer model's work). Same operations at that position, so the same
    numbers as the full forward (tests check it). Models with post-norm blocks use the full forward.
    """
    from circuits.model.block import PreNormBlock

    if not model.blocks or not isinstance(model.blocks[-1], PreNormBlock) or model.position_bias is not None or model.token_type_embed is not None:
        return model.logits_of(tokens)[:, -1]
    resid = model.embed(tokens)  # [batch, pos, d_model]
    qk_pos = None
    if model.pos_embed is not None:
        resid, qk_pos = model.positional.place(resid, model.pos_embed(tokens))
    if model.ln_embed is not None:
        resid = model.ln_embed(resid)
    ctx = model.attention_context(tokens.shape[1], resid.dtype, tokens.device)
    ctx.qk_pos = qk_pos
    for block in model.blocks[:-1]:
        resid = block(resid, ctx)
    last = model.blocks[-1]
    resid_mid = resid[:, -1:] + last.attn(last.ln1(resid), ctx)[:, -1:]  # [batch, 1, d_model]
    resid_post = resid_mid + last.mlp(last.ln2(resid_mid))
    return model.unembed(model.ln_final(resid_post))[:, -1]  # [batch, d_vocab_out]


# ---- the training task --------------------------------------------------------------------------
class ModularAdditionTask(Task):
    """Full-batch training on :class:`ModularAddition` through :func:`circuits.train` (the paper's setup).

    Every step's batch is the whole training set (``train_cfg.batch_size`` must equal
    ``data.n_train``, so the run's config says what it trains on); the loss is the cross-entropy of
    the logits at ``=`` over the ``p`` number classes (:func:`last_position_logits`). ``evaluate``
    returns the train and test loss and accuracy on every pair of each set; ``val_loss`` is the
    test loss. The model must read ``a b =``: ``d_vocab = p + 1``, ``d_vocab_out = p``, ``n_ctx >= 3``.
    """

    name = "modular_addition"

    def __init__(self, data: ModularAddition | None = None, **settings):
        if data is not None and settings:
            raise ValueError("pass either data=ModularAddition(...) or its settings (p=, train_fraction=, seed=), not both")
        self.data = data if data is not None else ModularAddition(**settings)
        if not isinstance(self.data, ModularAddition):
            raise TypeError(f"data must be a ModularAddition, got {type(self.data).__name__}")
        self.train_set = self.data.split("train")
        self.test_set = self.data.split("test")

    def check_model(self, model_cfg) -> None:
        p = self.data.p
        if model_cfg.d_vocab != p + 1 or model_cfg.d_vocab_out_ != p or model_cfg.n_ctx < 3:
            raise ValueError(
                f"modular addition mod p={p} needs d_vocab={p + 1} (the numbers and '='), d_vocab_out={p} (the answers) and n_ctx >= 3; "
                f"got d_vocab={model_cfg.d_vocab}, d_vocab_out={model_cfg.d_vocab_out_}, n_ctx={model_cfg.n_ctx}"
            )
        if model_cfg.mask == "prefix":
            raise ValueError("modular addition reads a b = with a causal or bidirectional mask; model_cfg.mask='prefix' is not supported")

    def prepare(self, model_cfg, train_cfg, cache_dir) -> None:
        if train_cfg.batch_size != self.data.n_train:
            raise ValueError(
                f"modular addition trains full-batch: set TrainConfig.batch_size={self.data.n_train} (every training pair of "
                f"p={self.data.p}, train_fraction={self.data.train_fraction}), not {train_cfg.batch_size}"
            )

    def identity(self) -> dict:
        return {"task": self.name, "data": self.data.describe()}

    def data_info(self) -> dict:
        return self.data.describe()

    def batch(self, step: int, train_cfg) -> tuple[Tensor, Tensor]:
        return self.train_set

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        tokens, labels = batch
        logits = last_position_logits(model, tokens) if hasattr(model, "blocks") else model(tokens)[:, -1]
        return F.cross_entropy(logits[:, : self.data.p].float(), labels)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device) -> dict:
        metrics = {}
        for name, (tokens, labels) in (("train", self.train_set), ("test", self.test_set)):
            logits = last_position_logits(model, tokens.to(device))[:, : self.data.p].float()
            labels = labels.to(device)
            metrics[f"{name}_loss"] = float(F.cross_entropy(logits, labels))
            metrics[f"{name}_accuracy"] = float((logits.argmax(-1) == labels).float().mean())
        return {"val_loss": metrics["test_loss"], **metrics}

    def tokens_per_step(self, model_cfg, train_cfg) -> int:
        return self.data.n_train * 3


def grokking_configs(data: ModularAddition, *, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512, lr: float = 1e-3,
                     weight_decay: float = 1.0, epochs: int = 10_000, seed: int = 0, n_checkpoints: int = 60, eval_every: int = 0):
    """The paper's one-layer model and full-batch AdamW for ``data`` (Nanda et al. 2023, App. A).

    One layer, ReLU MLP, no LayerNorm, learned positions, untied embeddings; AdamW with betas
    (0.9, 0.98), a 10-step linear warmup and then a constant learning rate (``min_lr_ratio=1``),
    no gradient clipping, weight decay on the matrices. ``n_checkpoints`` evenly spaced checkpoints
    plus 10 log-spaced ones (the memorisation phase is fast); ``eval_every`` adds metric-only evaluations.
    """
    from circuits.config import TransformerConfig
    from circuits.training.config import TrainConfig

    model_cfg = TransformerConfig(
        n_layers=1, d_model=d_model, n_heads=n_heads, d_mlp=d_mlp, d_vocab=data.d_vocab, d_vocab_out=data.p, n_ctx=3,
        act_fn="relu", normalization="none", positional="learned", seed=seed,
    )
    train_cfg = TrainConfig(
        steps=epochs, batch_size=data.n_train, lr=lr, warmup_steps=min(10, epochs), min_lr_ratio=1.0, weight_decay=weight_decay,
        betas=(0.9, 0.98), grad_clip=0.0, seed=seed, eval_every=eval_every, n_log_checkpoints=10, n_linear_checkpoints=n_checkpoints,
        log_every=eval_every or max(1, min(100, epochs // 20)),  # the loop evaluates at log steps: log at every evaluation
    )
    return model_cfg, train_cfg


def train_modular(root: str | os.PathLike, model_cfg, train_cfg, data: ModularAddition, *, name: str = "grokking", progress: bool = False) -> Path:
    """Train on ``data`` into ``root/<name>-<hash of configs, data and code version>`` unless that run is complete; return the folder.

    An interrupted run resumes from its last checkpoint; a changed setting trains into a new folder.
    """
    from circuits.training.loop import train  # the loop imports the tasks; imported here to keep this module light
    from circuits.training.zoo import CODE_VERSION, digest, run_complete

    key = digest({"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "data": data.describe(), "code": CODE_VERSION})
    folder = Path(root) / f"{name}-{key}"
    if not run_complete(folder):
        train(model_cfg, train_cfg, out_dir=folder, task=ModularAdditionTask(data), resume=True, progress=progress)
    return folder
