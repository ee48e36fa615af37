"""TrainConfig: how a model is trained (data, optimizer, schedule, checkpoints), validated, JSON round trip.

One frozen, keyword-only dataclass, like :class:`circuits.TransformerConfig`: ``__post_init__``
validates and raises ``ValueError`` naming the field and the fix; it never mutates. The sequence
length is the model's ``n_ctx`` and the vocabulary size the model's ``d_vocab``: they are not
repeated here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, no_type_check


@no_type_check  # validated by __post_init__ with our own messages, not by runtime type checkers
@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training hyperparameters.

    - ``steps`` optimizer steps of ``batch_size`` windows (the global batch, split across
      processes under ``torchrun``), each ``n_ctx`` tokens starting with ``BOS``.
    - AdamW (``lr``, ``betas``, ``eps``, ``weight_decay`` on matrices only), linear warmup over
      ``warmup_steps`` then cosine decay to ``lr * min_lr_ratio`` at the last step, gradients
      clipped to global norm ``grad_clip`` (0 disables clipping).
    - Data: ``seed`` draws the batches (a pure function of seed and step); ``val_fraction`` of
      the corpus files is held out; the BPE is trained on at most ``tokenizer_train_chars``
      characters of the training split (``None``: all of it). ``repeat_fraction`` of each
      batch's windows get a span of their own text copied to a later offset: ``window[a:a+L]``
      is copied over ``window[b:b+L]`` with ``1 <= a``, ``a + L <= b``, ``b + L <= n_ctx``, and
      ``a``, ``L``, ``b`` drawn per window from the step's generator, so the copy starts at a
      random offset after natural text, never at a fixed place (see
      :func:`circuits.training.data.sample_windows`; 0: pure corpus windows, the corpus alone).
      Evaluation always uses pure corpus windows.
    - Evaluation: ``eval_windows`` fixed validation windows, evaluated at every checkpoint and
      every ``eval_every`` steps (0: only at checkpoints).
    - Checkpoints: ``n_log_checkpoints`` log-spaced steps plus ``n_linear_checkpoints`` evenly
      spaced ones, plus step 0 and the final step (see :func:`checkpoint_steps`).
    """

    steps: int
    batch_size: int
    lr: float = 1e-3
    warmup_steps: int | None = None  # None: steps // 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.05
    tokenizer_train_chars: int | None = None
    repeat_fraction: float = 0.0
    eval_windows: int = 64
    eval_every: int = 0
    n_log_checkpoints: int = 24
    n_linear_checkpoints: int = 40
    log_every: int = 10

    def __post_init__(self) -> None:
        for name, minimum in (
            ("steps", 1),
            ("batch_size", 1),
            ("seed", 0),
            ("eval_windows", 1),
            ("eval_every", 0),
            ("n_log_checkpoints", 0),
            ("n_linear_checkpoints", 0),
            ("log_every", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"TrainConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
            if value < minimum:
                raise ValueError(f"TrainConfig.{name}={value} must be >= {minimum}")
        if self.tokenizer_train_chars is not None and (
            isinstance(self.tokenizer_train_chars, bool) or not isinstance(self.tokenizer_train_chars, int) or self.tokenizer_train_chars < 1
        ):
            raise ValueError(f"TrainConfig.tokenizer_train_chars={self.tokenizer_train_chars!r} must be a positive int or None (all text)")
        for name in ("lr", "eps"):
            if not _finite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} must be a positive number")
        for name in ("weight_decay", "grad_clip"):
            if not _finite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} must be a number >= 0")
        if not _finite(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio!r} must be in [0, 1]")
        if not _finite(self.repeat_fraction) or not 0 <= self.repeat_fraction <= 1:
            raise ValueError(f"TrainConfig.repeat_fraction={self.repeat_fraction!r} must be in [0, 1] (0: pure corpus windows)")
        if not _finite(self.val_fraction) or not 0 < self.val_fraction < 1:
            raise ValueError(f"TrainConfig.val_fraction={self.val_fraction!r} must be strictly between 0 and 1 (e.g. 0.05)")
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in self.betas)):
            raise ValueError(f"TrainConfig.betas={self.betas!r} must be a pair of numbers in [0, 1), e.g. (0.9, 0.99)")
        if self.warmup_steps is None:
            object.__setattr__(self, "warmup_steps", self.steps // 20)
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be an int >= 0 or None (steps // 20), got {self.warmup_steps!r}")
        if self.warmup_steps > self.steps:
            raise ValueError(f"TrainConfig.warmup_steps={self.warmup_steps} exceeds steps={self.steps}; lower warmup_steps")

    @property
    def checkpoint_steps(self) -> list[int]:
        return checkpoint_steps(self.steps, self.n_log_checkpoints, self.n_linear_checkpoints)

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise TypeError(f"TrainConfig.from_dict expects a dict, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig.from_dict: unknown fields {unknown}; known fields are {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("betas"), list):
            data["betas"] = tuple(data["betas"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)


def checkpoint_steps(steps: int, n_log: int, n_linear: int) -> list[int]:
    """Step 0, ``n_log`` log-spaced steps in ``[1, steps]``, ``n_linear`` evenly spaced ones, and ``steps``.

    Log spacing resolves the fast early changes; the even spacing keeps the middle of training
    (where the induction-head phase change happens) dense. Duplicates are merged, so short runs
    get fewer checkpoints.
    """
    points = {0, steps}
    if n_log:
        points.update(round(math.exp(math.log(steps) * i / max(n_log - 1, 1))) for i in range(n_log))
    if n_linear:
        points.update(round(steps * (i + 1) / n_linear) for i in range(n_linear))
    return sorted(point for point in points if 0 <= point <= steps)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
