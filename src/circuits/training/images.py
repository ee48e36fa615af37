"""Image classification: scikit-learn's bundled handwritten digits and the :class:`ImageClassificationTask`.

The data is ``sklearn.datasets.load_digits`` (1,797 grey 8x8 images of the digits 0-9, shipped
inside scikit-learn: nothing is downloaded), scaled from 0..16 to [0, 1]. The train/test split is
fixed: a stratified split by a seeded permutation (``seed=0``, 20% of each class held out: 359 test images,
1,438 training images), the same on every machine (it does not depend on scikit-learn's RNG code).

A batch is ``(images [batch, 1, 8, 8], labels [batch])`` drawn from the training split by the
step's generator (a pure function of the training seed and the step, like the token batches), or
the whole training split when ``batch_size`` covers it. The evaluation at every checkpoint
reports ``val_loss`` (test cross-entropy), ``test_accuracy``, ``train_loss`` and ``train_accuracy``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.config import TransformerConfig, vit_config
from circuits.model import Transformer
from circuits.training.config import TrainConfig
from circuits.training.data import step_generator
from circuits.training.presets import Preset
from circuits.training.task import Task, autocast

__all__ = [
    "ImageData", "load_digits_split", "check_image_data", "ImageClassificationTask", "classification_metrics",
    "VIT_PRESET", "vit_configs", "train_vit",
]


@dataclass(frozen=True)
class ImageData:
    """A fixed split of an image set: float images ``[n, channel, height, width]`` in [0, 1], integer labels ``[n]``."""

    name: str
    train_images: Float[Tensor, "n_train channel height width"]
    train_labels: Int[Tensor, "n_train"]
    test_images: Float[Tensor, "n_test channel height width"]
    test_labels: Int[Tensor, "n_test"]
    n_classes: int

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for tensor in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(tensor.contiguous().numpy().tobytes())
        return {
            "dataset": self.name,
            "n_train": len(self.train_labels),
            "n_test": len(self.test_labels),
            "image_shape": list(self.train_images.shape[1:]),
            "n_classes": self.n_classes,
            "sha256": digest.hexdigest()[:20],
        }


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's digits, scaled to [0, 1], split per class by a seeded permutation (fixed, offline)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn; imported lazily (slow import)

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r} must be strictly between 0 and 1 (e.g. 0.2)")
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]  # [n, 1, 8, 8]
    labels = torch.tensor(digits.target, dtype=torch.long)
    rng = np.random.RandomState(seed)
    test_index = []
    for label in range(10):
        members = np.flatnonzero(digits.target == label)
        members = members[rng.permutation(len(members))]
        test_index.extend(members[: round(len(members) * test_fraction)].tolist())
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.tensor(sorted(test_index))] = True
    return ImageData("sklearn_digits", images[~is_test], labels[~is_test], images[is_test], labels[is_test], 10)


def check_image_data(data: ImageData, cfg: TransformerConfig) -> None:
    """Refuse, naming the mismatch and the fix, an image set the model config cannot read."""
    if cfg.input != "patches":
        raise ValueError(f"image classification needs a model with input='patches' (got input={cfg.input!r}); build it with circuits.config.vit_config")
    shape = tuple(data.train_images.shape[1:])
    if len(shape) != 3 or tuple(data.test_images.shape[1:]) != shape:
        raise ValueError(f"{data.name}: images must be [n, channel, height, width] with one shape, got {shape} and {tuple(data.test_images.shape[1:])}")
    channels, height, width = shape
    if channels != cfg.n_channels:
        raise ValueError(f"{data.name} images have {channels} channels, the model has n_channels={cfg.n_channels}")
    if height % cfg.patch_size or width % cfg.patch_size:
        raise ValueError(f"{data.name} images are {height}x{width}, not divisible by patch_size={cfg.patch_size}; pick a patch_size dividing {height}")
    if (height, width) != (cfg.image_size, cfg.image_size):
        raise ValueError(f"{data.name} images are {height}x{width}, the model has image_size={cfg.image_size}")
    if cfg.n_classes < data.n_classes:
        raise ValueError(f"{data.name} has {data.n_classes} classes, the model's head has n_classes={cfg.n_classes}")


@torch.no_grad()
def classification_metrics(model: Transformer, images: Tensor, labels: Tensor, batch_size: int = 512) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` on a labelled image set (batched, eval-mode caller)."""
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)
        with autocast(device):
            logits = model(x)
        total_loss += float(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == y).sum())
    return total_loss / len(labels), correct / len(labels)


class ImageClassificationTask(Task):
    """Classify images (default: the fixed digits split) with a patch-input model and a classification head."""

    name = "image_classification"

    def __init__(self, data: ImageData | None = None):
        self.given = data
        self.loaded: ImageData | None = None

    @property
    def data(self) -> ImageData:
        """The image set (the digits split unless one was given), loaded on first use."""
        if self.loaded is None:
            self.loaded = self.given if self.given is not None else load_digits_split()
        return self.loaded

    def check_model(self, model_cfg: TransformerConfig) -> None:
        if model_cfg.input != "patches" or model_cfg.n_classes is None:
            raise ValueError(
                f"image classification needs input='patches' and a classification head (got input={model_cfg.input!r}, "
                f"n_classes={model_cfg.n_classes}); build the config with circuits.config.vit_config"
            )

    def prepare(self, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> None:
        check_image_data(self.data, model_cfg)

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, "data": self.data.describe()}

    def data_info(self) -> dict[str, Any]:
        return {"task": self.name, **self.data.describe()}

    def batch(self, step: int, train_cfg: TrainConfig) -> tuple[Tensor, Tensor]:
        n_train = len(self.data.train_labels)
        if train_cfg.batch_size >= n_train:
            return self.data.train_images, self.data.train_labels
        index = torch.randint(0, n_train, (train_cfg.batch_size,), generator=step_generator(train_cfg.seed, step))
        return self.data.train_images[index], self.data.train_labels[index]

    def loss(self, model: torch.nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        images, labels = batch
        logits = model.logits_of(images) if isinstance(model, Transformer) else model(images)
        return torch.nn.functional.cross_entropy(logits.float(), labels)

    @torch.no_grad()
    def evaluate(self, model: Transformer, device: torch.device) -> dict[str, Any]:
        test_loss, test_accuracy = classification_metrics(model, self.data.test_images, self.data.test_labels)
        train_loss, train_accuracy = classification_metrics(model, self.data.train_images, self.data.train_labels)
        return {"val_loss": test_loss, "test_accuracy": test_accuracy, "train_loss": train_loss, "train_accuracy": train_accuracy}

    def tokens_per_step(self, model_cfg: TransformerConfig, train_cfg: TrainConfig) -> int:
        return min(train_cfg.batch_size, len(self.data.train_labels)) * model_cfg.n_ctx


# ---- the digits ViT preset ---------------------------------------------------------------------
#: The cheapest settings that reached >= 97% held-out accuracy on the digits with a 4x4 patch grid
#: (benchmarks/calibrate_vit.py; README, "Vision transformers").
VIT_PRESET = Preset(
    name="vit",
    purpose="a two-layer ViT on scikit-learn's 8x8 digits (2x2 patches, class token): attention over image patches",
    model=vit_config(image_size=8, patch_size=2, n_classes=10, n_layers=2, d_model=32, n_heads=4, seed=0),
    train=TrainConfig(steps=300, batch_size=128, lr=3e-3, warmup_steps=15, seed=0, n_log_checkpoints=4, n_linear_checkpoints=3),
)
QUICK_STEPS = 60


def vit_configs(quick: bool = False, seed_offset: int = 0) -> tuple[TransformerConfig, TrainConfig]:
    """The preset's configs; ``quick`` trains :data:`QUICK_STEPS` steps; ``seed_offset`` shifts model and batch seeds."""
    model_cfg, train_cfg = VIT_PRESET.model, VIT_PRESET.train
    if quick:
        train_cfg = dataclasses.replace(train_cfg, steps=QUICK_STEPS, warmup_steps=QUICK_STEPS // 20, n_log_checkpoints=2, n_linear_checkpoints=1)
    if seed_offset:
        model_cfg = model_cfg.replace(seed=model_cfg.seed + seed_offset)
        train_cfg = dataclasses.replace(train_cfg, seed=train_cfg.seed + seed_offset)
    return model_cfg, train_cfg


def train_vit(root: str | Path, *, quick: bool = False, seed_offset: int = 0, progress: bool = False) -> Path:
    """Train the digits ViT into ``root/vit-<hash of the configs>`` unless a complete run is there; return the run folder."""
    from circuits.training.loop import train  # the loop imports tasks; imported here to keep this module light

    model_cfg, train_cfg = vit_configs(quick, seed_offset)
    key = hashlib.sha256(json.dumps([model_cfg.to_dict(), train_cfg.to_dict()], sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(root) / f"vit-{key}"
    if not _complete(folder):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a model this small gains nothing from more; on a busy machine more threads stall
        try:
            train(model_cfg, train_cfg, out_dir=folder, task=ImageClassificationTask(), resume=True, progress=progress)
        finally:
            torch.set_num_threads(threads)
    return folder


def _complete(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "run.json").read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError):
        return False
