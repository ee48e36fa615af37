"""The Hugging Face Trainer route: export_hf -> transformers.Trainer -> load_hf, compared with circuits.train on the same batches."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the Trainer route needs transformers (the dev extra)")

from circuits import TrainConfig, Tokenizer, Transformer, TransformerConfig  # noqa: E402
from circuits.hf.trainer import compare_routes, hf_train, hf_training_arguments  # noqa: E402


@pytest.fixture(scope="module")
def model():
    tokenizer = Tokenizer.train(["def add(a, b):\n    return a + b\n"] * 20, vocab_size=300)
    cfg = TransformerConfig(n_layers=2, d_model=16, n_heads=4, d_head=4, d_vocab=tokenizer.vocab_size, n_ctx=11, d_mlp=24, positional="learned")
    model = Transformer(cfg)
    model.tokenizer = tokenizer
    return model


@pytest.fixture(scope="module")
def batches(model):
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, model.config.d_vocab, (4, 11), generator=generator) for _ in range(6)]


def test_round_trip_and_the_two_routes_agree(model, batches, tmp_path):
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=0)
    result = compare_routes(model, batches, cfg, tmp_path)
    with torch.no_grad():
        first = float(model(batches[0], return_type="loss"))
    assert abs(result.theirs[0] - first) < 1e-5  # the same loss on the same batch from the same weights
    assert len(result.ours) == len(result.theirs) == 6
    assert result.max_loss_difference < 1e-4, (result.ours, result.theirs)
    assert result.max_weight_difference < 1e-4, result.weight_differences
    # load_hf gave back a Transformer whose logits are those of the Trainer's model
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf" / "trained").eval()
    with torch.no_grad():
        assert float((result.theirs_model(batches[1]) - hf(batches[1]).logits).abs().max()) < 1e-5
    assert not torch.equal(result.theirs_model.W_E, model.W_E)  # it did train
    assert result.theirs_model.tokenizer is not None


def test_training_arguments_follow_our_config(tmp_path):
    cfg = TrainConfig(steps=7, batch_size=3, lr=2e-3, warmup_steps=1, weight_decay=0.05, betas=(0.8, 0.95), grad_clip=0.5, seed=4)
    args = hf_training_arguments(cfg, tmp_path)
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (7, 3, 2e-3)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm, args.seed) == (0.8, 0.95, 0.05, 0.5, 4)
    assert args.lr_scheduler_kwargs == {"min_lr_rate": cfg.min_lr_ratio}
    with pytest.raises(TypeError, match="TrainConfig"):
        hf_training_arguments({"steps": 3}, tmp_path)


def test_bad_batches_are_refused(model, batches, tmp_path):
    with pytest.raises(ValueError, match="one batch per step"):
        hf_train(model, batches[:2], TrainConfig(steps=3, batch_size=4), tmp_path)
    with pytest.raises(ValueError, match="batch_size=2"):
        hf_train(model, batches, TrainConfig(steps=3, batch_size=2), tmp_path)


def test_guide_trainer_example_runs(tmp_path, monkeypatch):
    """The Trainer example of the fine-tuning guide (docs/fine_tuning.md) runs as written."""
    import re
    import tempfile
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "fine_tuning.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "compare_routes(" in b]
    assert len(blocks) == 1
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    exec(compile(blocks[0], "docs/fine_tuning.md", "exec"), {})
