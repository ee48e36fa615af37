"""The Hugging Face ``Trainer`` route: ``export_hf`` -> ``transformers.Trainer`` -> ``load_hf``.

:func:`hf_train` exports a :class:`circuits.Transformer` (GPT-2 or LLaMA layout), trains the
exported model with ``transformers.Trainer`` on the token batches it is given, in the order given
(one batch per optimizer step), and loads the result back with :func:`circuits.load_hf`.
:func:`hf_training_arguments` builds ``TrainingArguments`` that follow a
:class:`~circuits.training.config.TrainConfig` wherever the Trainer has a matching setting, so the
two routes can be compared on the same batches from the same weights.

What is matched, and what differs (``circuits.train`` vs the Trainer's defaults):

=====================  ===========================================  =================================================
setting                ``circuits.train``                           ``Trainer`` default -> what ``hf_training_arguments`` sets
=====================  ===========================================  =================================================
optimizer              fused AdamW, betas (0.9, 0.99), eps 1e-8     ``adamw_torch_fused``, betas (0.9, 0.999) -> ours
weight decay           0.01 on matrices (``ndim >= 2``)             0.0; when set, on every weight but biases and norm
                                                                    gains (the same split for GPT-2/LLaMA) -> ours
schedule               warmup ``lr (t+1)/w``, cosine to 0.1 lr      linear decay to 0 -> ``cosine_with_min_lr``; its
                                                                    warmup is ``lr t/w`` (one step later than ours):
                                                                    identical only with ``warmup_steps=0``
clipping               global norm 1.0                              1.0 -> ours
loss                   mean over ``B (T-1)`` next-token targets     the same once the first label of each row is -100
                                                                    (else the Trainer divides by ``B T``)
data order             ``task.batch(step)``                         shuffled map dataset -> an iterable of our batches
=====================  ===========================================  =================================================

With ``warmup_steps=0`` and the same batches, the two routes' per-step losses agree to float
rounding (the models' kernels differ: fused ``c_attn`` vs per-head ``W_Q``), measured in
``tests/test_hf_trainer.py`` and the README. ``transformers`` is imported only inside these
functions (it is an optional dependency: the ``dev`` extra).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from circuits.hf import export_hf, load_hf
from circuits.model import Transformer
from circuits.training.checkpoint import load_weights
from circuits.training.config import TrainConfig
from circuits.training.finetune import TokenBatchesTask, finetune

__all__ = ["HFTrainResult", "RouteComparison", "compare_routes", "hf_train", "hf_training_arguments"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class HFTrainResult:
    """The model trained by ``transformers.Trainer``, loaded back (``model``), its folder, and its loss at every step."""

    model: Transformer
    folder: Path
    losses: list[float]


def hf_training_arguments(train_cfg: TrainConfig, output_dir: str | os.PathLike, **overrides: Any):
    """``transformers.TrainingArguments`` following ``train_cfg`` (see the module docstring's table); CPU, no saving, no reports."""
    from transformers import TrainingArguments

    if not isinstance(train_cfg, TrainConfig):
        raise TypeError(f"train_cfg must be a circuits TrainConfig, got {type(train_cfg).__name__}")
    kwargs = dict(
        output_dir=str(output_dir), max_steps=train_cfg.steps, per_device_train_batch_size=train_cfg.batch_size,
        learning_rate=train_cfg.lr, adam_beta1=train_cfg.betas[0], adam_beta2=train_cfg.betas[1], adam_epsilon=train_cfg.eps,
        weight_decay=train_cfg.weight_decay, max_grad_norm=train_cfg.grad_clip, warmup_steps=train_cfg.warmup_steps,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": train_cfg.min_lr_ratio},
        optim="adamw_torch_fused", seed=train_cfg.seed, use_cpu=True, save_strategy="no", report_to=[], logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


class _Batches(torch.utils.data.IterableDataset):
    """The rows of the given batches, in order: the Trainer's loader regroups them into the same batches."""

    def __init__(self, batches: Sequence[Tensor]):
        self.batches = batches

    def __iter__(self):
        for batch in self.batches:
            labels = batch.clone()
            labels[:, 0] = -100  # never a target; keeps the Trainer's loss a mean over the B (T-1) real targets
            for row, label in zip(batch, labels):
                yield {"input_ids": row, "labels": label}


def _collate(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}


def _check_batches(batches: Sequence[Tensor], train_cfg: TrainConfig, model: Transformer) -> None:
    if len(batches) < train_cfg.steps:
        raise ValueError(f"hf_train needs one batch per step: got {len(batches)} batches for steps={train_cfg.steps}")
    for i, batch in enumerate(batches[: train_cfg.steps]):
        if not isinstance(batch, Tensor) or batch.ndim != 2 or batch.shape[0] != train_cfg.batch_size:
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"batch {i} is {shape}; each batch must be a [batch_size={train_cfg.batch_size}, pos] token tensor")
        model.check_tokens(batch)


def hf_train(
    model: Transformer,
    batches: Sequence[Int[Tensor, "batch pos"]],
    train_cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    tokenizer: Any = None,
    **overrides: Any,
) -> HFTrainResult:
    """Export ``model``, train it with ``transformers.Trainer`` on ``batches[step]`` at each step, and load it back.

    ``out_dir/parent`` holds the export, ``out_dir/trained`` the trained Hugging Face folder (with
    the tokenizer files); ``overrides`` go to :func:`hf_training_arguments`. The result's
    ``losses[t]`` is the training loss of step ``t`` (before its update), exactly as the
    Trainer computed it.
    """
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer

    _check_batches(batches, train_cfg, model)
    out = Path(out_dir)
    parent = export_hf(model, out / "parent", tokenizer=tokenizer, overwrite=True)
    hf_model = AutoModelForCausalLM.from_pretrained(parent, dtype=torch.float32)
    losses: list[float] = []

    class RecordingTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            losses.append(float((result[0] if return_outputs else result).detach()))
            return result

    args = hf_training_arguments(train_cfg, out / "trainer", **overrides)
    trainer = RecordingTrainer(model=hf_model, args=args, train_dataset=_Batches(list(batches[: train_cfg.steps])), data_collator=_collate)
    trainer.remove_callback(PrinterCallback)  # no log dicts on stdout
    trainer.train()
    trained = out / "trained"
    if trained.exists():
        shutil.rmtree(trained)
    trainer.model.save_pretrained(trained, safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (parent / name).is_file():
            shutil.copy(parent / name, trained / name)
    return HFTrainResult(model=load_hf(trained), folder=trained, losses=losses)


@dataclass(frozen=True)
class RouteComparison:
    """Per-step training losses of ``circuits.train`` (``ours``) and ``transformers.Trainer`` (``theirs``) on the same batches."""

    ours: list[float]
    theirs: list[float]
    max_loss_difference: float  #: largest ``|ours[t] - theirs[t]|``
    max_weight_difference: float  #: largest absolute difference between the trained models' parameters, key biases ``b_K`` excepted
    weight_differences: dict[str, float]  #: largest absolute difference of each parameter
    ours_model: Transformer
    theirs_model: Transformer


def compare_routes(model: Transformer, batches: Sequence[Int[Tensor, "batch pos"]], train_cfg: TrainConfig, out_dir: str | os.PathLike) -> RouteComparison:
    """Train ``model`` both ways on ``batches`` (one per step) from the same weights and compare the losses step by step.

    Our route is :func:`circuits.training.finetune.finetune` on a
    :class:`~circuits.training.finetune.TokenBatchesTask` with ``log_every=1``; ``unembed.b_U`` is
    frozen there (GPT-2 and LLaMA have no unembedding bias, so an exported model's must stay 0).
    ``max_weight_difference`` leaves out the key biases ``b_K``: their true gradient is 0 (a
    softmax does not change when one number is added to every logit of a row), so each route's
    AdamW turns its own rounding noise into steps of about ``lr``, and the two drift apart by that
    much while every other parameter agrees to float rounding.
    """
    out = Path(out_dir)
    cfg = train_cfg.replace(log_every=1)
    theirs = hf_train(model, batches, cfg, out / "hf", tokenizer=getattr(model, "tokenizer", None))
    freeze = ["unembed.b_U"] if getattr(model.unembed, "b_U", None) is not None else []
    task = TokenBatchesTask(list(batches[: cfg.steps]), tokenizer=getattr(model, "tokenizer", None))
    same = ("warmup_steps", "log_every", "weight_decay", "betas", "eps", "grad_clip", "min_lr_ratio")
    result = finetune(model, out_dir=out / "circuits", steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, task=task, freeze=freeze,
                      train_changes={k: getattr(cfg, k) for k in same}, progress=False, device="cpu")
    records = [json.loads(line) for line in (out / "circuits" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ours = [r["train_loss"] for r in records if r.get("kind") == "train"]
    ours_model = Transformer(model.config)
    load_weights(ours_model, result.checkpoint)
    theirs_state = theirs.model.state_dict()
    diffs = {name: float((tensor - theirs_state[name]).abs().max()) for name, tensor in ours_model.state_dict().items() if name in theirs_state}
    weight_diff = max((d for name, d in diffs.items() if not name.endswith(".b_K")), default=0.0)
    loss_diff = max(abs(a - b) for a, b in zip(ours, theirs.losses))
    return RouteComparison(ours, theirs.losses, loss_diff, weight_diff, diffs, ours_model.eval(), theirs.model)
