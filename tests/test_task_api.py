"""``circuits.train`` with a task of its own, ``init_from`` and ``freeze``: checkpoints, resume, provenance, errors."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from training_helpers import state_dicts_equal, tiny_model_config, tiny_train_config, write_corpus

from circuits import train
from circuits.training import checkpoint as ckpt
from circuits.training.data import step_generator
from circuits.training.init import state_dict_sha256
from circuits.training.task import LanguageModelTask, Task


class FirstTokenTask(Task):
    """Predict the first token at the last position: a classification task with no tokenizer."""

    name = "first_token"

    def prepare(self, model_cfg, train_cfg, cache_dir):
        self.n_ctx, self.n_classes = model_cfg.n_ctx, 5
        generator = torch.Generator().manual_seed(123)
        self.val = torch.randint(0, self.n_classes, (16, model_cfg.n_ctx), generator=generator)

    def identity(self):
        return {"task": self.name, "n_classes": 5}

    def batch(self, step, train_cfg):
        tokens = torch.randint(0, self.n_classes, (train_cfg.batch_size, self.n_ctx), generator=step_generator(train_cfg.seed, step))
        return tokens, tokens[:, 0].clone()

    def loss(self, model, batch):
        tokens, labels = batch
        return F.cross_entropy(model(tokens, return_type="logits")[:, -1], labels)

    def evaluate(self, model, device):
        logits = model(self.val, return_type="logits")[:, -1]
        return {"val_loss": float(F.cross_entropy(logits, self.val[:, 0])), "val_accuracy": float((logits.argmax(-1) == self.val[:, 0]).float().mean())}


def _run(tmp_path, name, **kwargs):
    defaults = dict(out_dir=tmp_path / name, progress=False, device="cpu")
    return train(tiny_model_config(), tiny_train_config(), **{**defaults, **kwargs})


def test_a_task_of_its_own_trains_checkpoints_and_logs_its_metrics(tmp_path):
    result = _run(tmp_path, "a", task=FirstTokenTask())
    metrics = [json.loads(line) for line in (result.run_dir / ckpt.METRICS_FILE).read_text().splitlines()]
    evals = [m for m in metrics if m["kind"] == "eval"]
    assert evals and all("val_accuracy" in m for m in evals)
    config = ckpt.read_config(result.checkpoint)
    assert config["has_tokenizer"] is False and "val_accuracy" in config["metrics"]
    model, tokenizer = ckpt.load(result.checkpoint)
    assert tokenizer is None and not (result.checkpoint / ckpt.TOKENIZER_FILE).exists()
    run = json.loads((result.run_dir / ckpt.RUN_FILE).read_text())
    assert run["task"] == "first_token" and run["n_classes"] == 5
    again = _run(tmp_path, "b", task=FirstTokenTask())
    assert state_dicts_equal(model.state_dict(), ckpt.load(again.checkpoint)[0].state_dict())


def test_a_language_model_run_records_no_task_fields(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    result = _run(tmp_path, "lm", corpus=corpus, cache_dir=tmp_path / "cache")
    run = json.loads((result.run_dir / ckpt.RUN_FILE).read_text())
    assert set(run) >= {"model", "train", "corpus_fingerprint"} and not {"task", "init_from", "freeze"} & set(run)
    assert "has_tokenizer" not in ckpt.read_config(result.checkpoint)


def test_init_from_a_checkpoint_starts_from_its_weights_and_records_the_parent(tmp_path):
    parent = _run(tmp_path, "parent", task=FirstTokenTask())
    step0 = _run(tmp_path, "child", task=FirstTokenTask(), init_from=parent.run_dir)
    run = json.loads((step0.run_dir / ckpt.RUN_FILE).read_text())
    assert run["init_from"]["path"] == str(parent.checkpoint)
    assert run["init_from"]["sha256"] == hashlib.sha256((parent.checkpoint / ckpt.MODEL_FILE).read_bytes()).hexdigest()
    first = ckpt.list_checkpoints(step0.run_dir)[0][1]
    assert state_dicts_equal(ckpt.load(first)[0].state_dict(), ckpt.load(parent.checkpoint)[0].state_dict())


def test_init_from_a_state_dict_and_freeze_keep_frozen_parameters_bitwise(tmp_path):
    start = {name: tensor.clone() for name, tensor in ckpt.load(_run(tmp_path, "p", task=FirstTokenTask()).checkpoint)[0].state_dict().items()}
    result = _run(tmp_path, "frozen", task=FirstTokenTask(), init_from=start, freeze=["embed.*", "blocks.0.*"])
    end = ckpt.load(result.checkpoint)[0].state_dict()
    frozen = [name for name in end if name.startswith(("embed.", "blocks.0."))]
    assert frozen and all(torch.equal(end[name], start[name]) for name in frozen)
    assert any(not torch.equal(end[name], start[name]) for name in end if name.startswith("blocks.1."))
    run = json.loads((result.run_dir / ckpt.RUN_FILE).read_text())
    assert run["freeze"] == ["embed.*", "blocks.0.*"] and run["init_from"] == {"path": None, "sha256": state_dict_sha256(start)}


class CrashingTask(FirstTokenTask):
    """The same task, but step 9's batch raises once: a crash after some checkpoints."""

    def batch(self, step, train_cfg):
        if step == 9:
            raise RuntimeError("crash")
        return super().batch(step, train_cfg)


def test_a_frozen_fine_tune_resumes_bitwise(tmp_path):
    start = ckpt.load(_run(tmp_path, "p", task=FirstTokenTask()).checkpoint)[0].state_dict()
    whole = _run(tmp_path, "whole", task=FirstTokenTask(), init_from=start, freeze=["embed.*"])
    with pytest.raises(RuntimeError, match="crash"):
        _run(tmp_path, "cut", task=CrashingTask(), init_from=start, freeze=["embed.*"])
    assert 0 < ckpt.list_checkpoints(tmp_path / "cut")[-1][0] < 12
    resumed = _run(tmp_path, "cut", task=FirstTokenTask(), init_from=start, freeze=["embed.*"], resume=True)
    assert state_dicts_equal(ckpt.load(whole.checkpoint)[0].state_dict(), ckpt.load(resumed.checkpoint)[0].state_dict())


def test_resume_with_another_parent_is_refused(tmp_path):
    start = ckpt.load(_run(tmp_path, "p", task=FirstTokenTask()).checkpoint)[0].state_dict()
    _run(tmp_path, "c", task=FirstTokenTask(), init_from=start)
    other = {name: tensor + 1 for name, tensor in start.items()}
    with pytest.raises(ValueError, match="init_from|differ|another"):
        _run(tmp_path, "c", task=FirstTokenTask(), init_from=other, resume=True)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(freeze=["nothing.*"]), ValueError, "matches no parameter"),
        (dict(freeze=["*"]), ValueError, "every parameter"),
        (dict(freeze=[""]), TypeError, "non-empty"),
        (dict(init_from={"embed.W_E": torch.zeros(3, 3)}), ValueError, "does not fit model_cfg"),
        (dict(init_from=42), TypeError, "init_from"),
        (dict(corpus="x", task=FirstTokenTask()), ValueError, "either task= or corpus="),
        (dict(task="lm"), TypeError, "task"),
    ],
)
def test_bad_task_init_and_freeze_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        _run(tmp_path, "bad", **{"task": FirstTokenTask(), **kwargs} if "corpus" not in kwargs and "task" not in kwargs else kwargs)
    assert not (tmp_path / "bad").exists()


def test_init_from_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _run(tmp_path, "bad", task=FirstTokenTask(), init_from=tmp_path / "nowhere")


def test_init_from_a_checkpoint_of_other_sizes_is_refused(tmp_path):
    parent = _run(tmp_path, "p", task=FirstTokenTask())
    with pytest.raises(ValueError, match="same"):
        train(tiny_model_config(d_model=13), tiny_train_config(), out_dir=tmp_path / "bad", task=FirstTokenTask(), init_from=parent.run_dir, progress=False, device="cpu")


def test_the_language_model_task_refuses_a_bidirectional_model(tmp_path):
    with pytest.raises(ValueError, match="causal"):
        LanguageModelTask().check_model(tiny_model_config(mask="bidirectional"))
