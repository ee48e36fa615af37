"""The digits image set, its checks, and the ImageClassificationTask (training layer)."""

from __future__ import annotations

import json

import pytest
import torch

from circuits import Transformer
from circuits.config import vit_config
from circuits.training.config import TrainConfig
from circuits.training.images import ImageClassificationTask, ImageData, check_image_data, classification_metrics, load_digits_split

DIGITS_CFG = vit_config(image_size=8, patch_size=2, n_classes=10, n_layers=1, d_model=8, n_heads=2, seed=0)


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits_split()


def test_digits_split_is_fixed_and_stratified(digits):
    assert digits.train_images.shape == (1438, 1, 8, 8) and digits.test_images.shape == (359, 1, 8, 8)
    assert float(digits.train_images.min()) == 0.0 and float(digits.train_images.max()) == 1.0
    assert digits.describe() == load_digits_split().describe()  # same bytes every time
    counts = torch.bincount(digits.test_labels, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # 20% of each class (~180 per class)
    assert digits.describe()["sha256"] != load_digits_split(seed=1).describe()["sha256"]


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(patch_size=4, image_size=12), "image_size=12"),
        (dict(n_channels=3), "1 channels, the model has n_channels=3"),
        (dict(n_classes=5), "10 classes"),
    ],
)
def test_image_data_checks(digits, changes, match):
    cfg = vit_config(**{**dict(image_size=8, patch_size=2, n_classes=10, n_layers=1, d_model=8, n_heads=2), **changes})
    with pytest.raises(ValueError, match=match):
        check_image_data(digits, cfg)


def test_patch_size_not_dividing_the_images_is_refused(digits):
    odd = ImageData("odd", digits.train_images[:, :, :6, :6], digits.train_labels, digits.test_images[:, :, :6, :6], digits.test_labels, 10)
    cfg = vit_config(image_size=8, patch_size=4, n_classes=10, n_layers=1, d_model=8, n_heads=2)
    with pytest.raises(ValueError, match="6x6, not divisible by patch_size=4"):
        check_image_data(odd, cfg)


def test_task_refuses_token_models():
    from tests.conftest import tiny_config

    with pytest.raises(ValueError, match="input='patches'"):
        ImageClassificationTask().check_model(tiny_config())


def test_batches_are_a_pure_function_of_seed_and_step(digits):
    task = ImageClassificationTask(digits)
    train_cfg = TrainConfig(steps=10, batch_size=32)
    a, b = task.batch(3, train_cfg), task.batch(3, train_cfg)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (32, 1, 8, 8)
    assert not torch.equal(task.batch(4, train_cfg)[1], a[1])
    full = task.batch(0, TrainConfig(steps=10, batch_size=5000))
    assert full[0].shape[0] == 1438


def test_loss_and_evaluate(digits):
    task = ImageClassificationTask(digits)
    model = Transformer(DIGITS_CFG).eval()
    batch = task.batch(0, TrainConfig(steps=1, batch_size=16))
    with torch.no_grad():
        loss = task.loss(model, batch)
        expected = model(batch[0], return_type="loss", labels=batch[1])
    assert loss.ndim == 0 and abs(float(loss) - float(expected)) < 1e-6
    metrics = task.evaluate(model, torch.device("cpu"))
    assert set(metrics) >= {"val_loss", "test_accuracy", "train_loss", "train_accuracy"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and isinstance(metrics["val_loss"], float)


def test_training_through_circuits_train(tmp_path, digits):
    from circuits.training.checkpoint import load
    from circuits.training.loop import train

    train_cfg = TrainConfig(steps=30, batch_size=64, lr=3e-3, n_log_checkpoints=0, n_linear_checkpoints=1)
    train(DIGITS_CFG, train_cfg, out_dir=tmp_path / "run", task=ImageClassificationTask(digits), progress=False)
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert evals[-1]["step"] == 30 and evals[-1]["test_accuracy"] > evals[0]["test_accuracy"]
    model, tokenizer = load(tmp_path / "run")
    assert tokenizer is None and model.config == DIGITS_CFG
    _, accuracy = classification_metrics(model, digits.test_images, digits.test_labels)
    assert accuracy == pytest.approx(evals[-1]["test_accuracy"])
