"""``circuits.train``: the training loop (AdamW, warmup + cosine, clipping, eval, checkpoints, resume, DDP).

Reproducibility: the model is initialised from ``model_cfg.seed`` and step ``t``'s batch is a
pure function of ``(train_cfg.seed, t)``, so on CPU two runs with the same configs produce
bitwise identical weights, and a run resumed from any checkpoint (weights + AdamW moments, no
RNG state needed) ends exactly where the uninterrupted run ends.

Faults: the run folder is locked for the whole session (:mod:`circuits.training.lock`); resuming
follows :mod:`circuits.training.run_folder`; a step whose loss or gradient norm is not finite
stops training with :class:`TrainingDivergedError` (see :mod:`circuits.training.divergence`), and no
checkpoint with non-finite weights or optimizer state is ever written.

Speed: the step is ``model.next_token_loss`` (the forward's loss without its host-side input
checks), optionally compiled (``compiled=True``), with the fused AdamW kernel. Each checkpoint's
evaluation runs on the training thread; its files are captured there and written on a background
thread while the next step runs (:class:`~circuits.training.checkpoint.CheckpointWriter`), and are
on disk before the step after that starts. A kill loses at most that one checkpoint, whose steps
the resume recomputes bitwise from the previous one.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from circuits.atomic import atomic_write_json, json_line
from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.training import checkpoint as ckpt
from circuits.training import distributed
from circuits.training.config import TrainConfig
from circuits.training.data import Corpus
from circuits.training.divergence import DivergenceGuard, TrainingDivergedError, all_finite, gradient_norm
from circuits.training.init import Freeze, parent_record
from circuits.training.lock import FolderLock, lock_folder
from circuits.training.run_folder import StartPoint, check_out_dir, check_same_run, load_start, plan_start, prepare_folder
from circuits.training.task import LanguageModelTask, Task, autocast


@dataclass(frozen=True)
class TrainResult:
    """Where a run ended: its folder, final checkpoint and metrics."""

    run_dir: Path
    checkpoint: Path
    step: int
    tokens_seen: int
    train_loss: float | None
    val_loss: float
    elapsed_s: float
    tokens_per_s: float  # training throughput of this session (steps only, excluding eval and checkpoints)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for step ``step`` (0-based): linear warmup to ``lr``, then cosine to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, with weight decay on matrices (``ndim >= 2``) only; biases, gains and smear weights are not decayed.

    The fused kernel (one pass over each parameter; about 3x faster than the ``foreach`` one on the
    presets at one thread) computes the same update with different rounding in the last bits.
    """
    trainable = [param for param in model.parameters() if param.requires_grad]  # frozen parameters are never updated
    decay = [param for param in trainable if param.ndim >= 2]
    no_decay = [param for param in trainable if param.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=True)


def _identity(model_cfg: TransformerConfig, train_cfg: TrainConfig, task: Task, start: dict[str, Any]) -> dict[str, Any]:
    """What a run is (compared on resume): the configs, the data, and where its weights started (only when not fresh)."""
    return {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), **task.identity(), **start}


# ---- training -----------------------------------------------------------------------------
def train(
    model_cfg: TransformerConfig,
    train_cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike,
    corpus: str | os.PathLike | Corpus | None = None,
    task: Task | None = None,
    init_from: str | os.PathLike | dict[str, torch.Tensor] | None = None,
    freeze: Sequence[str] = (),
    resume: bool = False,
    device: str | torch.device = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    compiled: bool = False,
) -> TrainResult:
    """Train a model on ``task`` (default: next-token prediction on ``corpus``, the Python standard library) and write checkpoints to ``out_dir``.

    ``task`` is a :class:`~circuits.training.task.Task` (its batches, loss and evaluation); pass
    either ``task`` or ``corpus``. ``init_from`` starts from other weights instead of the seed's
    initialisation: a checkpoint or run folder, or a state dict (e.g. of a model from ``load_hf``);
    names and shapes must match ``model_cfg``, and the parent's path and the SHA-256 of its weights
    are recorded in ``run.json``. ``freeze`` holds ``fnmatch`` patterns over parameter names
    (``"embed.*"``, ``"blocks.0.attn.*"``); the parameters they match are not trained and stay bitwise
    equal; a pattern that matches nothing is an error.

    ``resume=True`` continues from the newest checkpoint in ``out_dir`` that holds an optimizer
    state (starting fresh if the folder is empty, returning at once if the run is complete; a
    folder that cannot be resumed is refused unchanged). The folder is locked while training: a
    second writer gets :class:`~circuits.training.lock.FolderLockedError` naming this process.
    A non-finite loss or gradient raises :class:`TrainingDivergedError`. Under ``torchrun`` this
    runs data-parallel (see :mod:`circuits.training.distributed`); ``train_cfg.batch_size`` is the global batch.

    ``compiled=True`` compiles the loss's forward and backward pass with ``torch.compile`` (one
    graph; single-process runs only). Compiled kernels round differently from eager ones in the
    last bits, so a compiled run is bitwise reproducible, and resumes bitwise, only as a compiled
    run; the mode is recorded in ``run.json`` and a resume in the other mode is refused. The
    compile takes seconds with a warm inductor cache, tens of seconds without one.
    """
    if not isinstance(model_cfg, TransformerConfig):
        raise TypeError(f"model_cfg must be a TransformerConfig, got {type(model_cfg).__name__}")
    if not isinstance(train_cfg, TrainConfig):
        raise TypeError(f"train_cfg must be a TrainConfig, got {type(train_cfg).__name__}")
    if task is not None and corpus is not None:
        raise ValueError("pass either task= or corpus= (the corpus of a language-model task: task=LanguageModelTask(corpus)), not both")
    task = LanguageModelTask(corpus) if task is None else task
    if not isinstance(task, Task):
        raise TypeError(f"task must be a circuits.training.task.Task, got {type(task).__name__}")
    task.check_model(model_cfg)
    start = Freeze.build(freeze, model_cfg), parent_record(init_from, model_cfg)
    info = distributed.from_environment()
    if train_cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size={train_cfg.batch_size} is not divisible by the {info.world_size} processes; use a multiple of {info.world_size}")
    torch_device = distributed.resolve_device(device, info)
    distributed.setup(info, torch_device)
    try:
        with torch.enable_grad():  # a caller inside torch.no_grad() (e.g. an analysis asking a zoo for a model) still trains
            compiled = bool(compiled) and not info.enabled
            return _Trainer(model_cfg, train_cfg, Path(out_dir), task, start, resume, torch_device, cache_dir, progress, info, compiled).run()
    finally:
        distributed.teardown(info)


class _Meter:
    """The mean training loss and the throughput between two log points."""

    def __init__(self, device: torch.device, step: int):
        self.loss_sum, self.count = torch.zeros((), device=device), 0
        self.last_time, self.last_step = time.perf_counter(), step
        self.step_time, self.train_loss = 0.0, None

    def reset(self, step: int) -> None:
        self.loss_sum.zero_()
        self.count, self.last_time, self.last_step = 0, time.perf_counter(), step


class _Trainer:
    def __init__(self, model_cfg, train_cfg, out_dir, task, start, resume, device, cache_dir, progress, info, compiled):
        self.model_cfg, self.cfg, self.out_dir = model_cfg, train_cfg, out_dir
        self.task, self.resume, self.device = task, resume, device
        self.freeze, self.parent = start
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress, self.info = progress, info
        self.lock: FolderLock | None = None
        self.start = StartPoint(0)
        self.last_checkpoint: Path | None = None
        self.compiled = compiled
        self.writer = ckpt.CheckpointWriter()

    def run(self) -> TrainResult:
        ok, error = True, None
        try:
            if self.info.is_main:
                try:
                    self.prepare()
                except Exception as caught:  # shared with the other ranks below, then re-raised
                    ok, error = False, caught
            if not distributed.all_ok(ok, self.info):
                if error is not None:
                    raise error
                raise RuntimeError("rank 0 failed while preparing the data or the output folder; see its error above")
            if not self.info.is_main:
                self.prepare_follower()
            self.share_start()
            return self.train_session()
        finally:
            error = self.writer.close()  # every checkpoint submitted is on disk before the folder is unlocked
            if self.lock is not None:
                self.lock.release()
            if error is not None and sys.exc_info()[0] is None:  # an error already on its way is the one to report
                raise error

    # -- setup: checks and reads first, then the lock, then the first write --
    def prepare(self) -> None:
        if (self.out_dir / ckpt.RUN_FILE).is_file():  # an existing run: refuse at once while another process writes it
            self.lock = lock_folder(self.out_dir, "run folder")
        existing = check_out_dir(self.out_dir, self.resume)  # before anything is read or written
        identity = self.identity()
        if existing is not None:
            check_same_run(existing, identity, self.out_dir)
            _check_same_mode(existing, self.compiled, self.out_dir)
        self.task.prepare(self.model_cfg, self.cfg, self.cache_dir)
        if self.lock is None:  # a new run: locked only now, so that refused settings leave no folder behind
            self.lock = lock_folder(self.out_dir, "run folder")
            existing = check_out_dir(self.out_dir, self.resume)  # another process may have started a run here meanwhile
            if existing is not None:
                check_same_run(existing, identity, self.out_dir)
        self.setup()
        self.start = plan_start(self.out_dir, existing, self.cfg.steps, self.model, self.optimizer)
        prepare_folder(self.out_dir, self.start, self.run_record(complete=False))

    def prepare_follower(self) -> None:
        self.task.prepare(self.model_cfg, self.cfg, self.cache_dir)
        self.setup()

    def identity(self) -> dict[str, Any]:
        return _identity(self.model_cfg, self.cfg, self.task, self.parent.record(self.freeze))

    def setup(self) -> None:
        """The model (from the seed, or the parent's weights), its frozen parameters, the optimizer and the loss."""
        self.model = Transformer(self.model_cfg).to(self.device)
        self.parent.load_into(self.model)
        self.freeze.apply(self.model)
        self.model.tokenizer = self.task.tokenizer
        self.optimizer = make_optimizer(self.model, self.cfg)
        self.loss_fn = self.task.loss_fn(self.model, self.compiled)
        self.data_info = self.task.data_info()

    def share_start(self) -> None:
        """Rank 0 decided where training starts; the other ranks load the same checkpoint."""
        start = self.start
        step, resumed, finished = distributed.share_ints([start.step, start.folder is not None, start.finished], self.info)
        if not self.info.is_main:
            folder = ckpt.step_dir(self.out_dir, step) if resumed else None
            elapsed = load_start(folder, self.model, self.optimizer) if resumed and not finished else 0.0
            self.start = StartPoint(step, folder, elapsed, bool(finished))
        self.last_checkpoint = self.start.folder

    def run_record(self, complete: bool) -> dict[str, Any]:
        identity = self.identity()
        mode = {"compiled": True} if self.compiled else {}  # eager runs' records are as before
        return {"format": ckpt.RUN_FORMAT, "format_version": ckpt.FORMAT_VERSION, **identity, **mode, "data": self.data_info, "complete": complete}

    # -- the loop --
    def train_session(self) -> TrainResult:
        cfg, info, start = self.cfg, self.info, self.start
        self.provenance = ckpt.provenance()
        self.tokens_per_step = self.task.tokens_per_step(self.model_cfg, cfg)
        self.checkpoint_steps = frozenset(cfg.checkpoint_steps)
        self.session_start = time.perf_counter()
        if start.folder is None:
            self.on_main(lambda: self.save(0, None))
        if start.finished:  # resuming a finished run
            final = ckpt.read_config(self.out_dir)
            return self.result(final["metrics"], ckpt.resolve_checkpoint(self.out_dir), final["run"]["elapsed_s"], 0.0)
        ddp = self.data_parallel() if info.enabled else self.model
        self.model.train()
        self.guard = DivergenceGuard(self.device, info, start.step, self.diverged)
        self.bar = _progress_bar(cfg.steps, start.step, enabled=self.progress and info.is_main)
        meter = _Meter(self.device, start.step)
        try:
            for step in range(start.step, cfg.steps):
                tick = time.perf_counter()
                meter.loss_sum += self.optimizer_step(step, ddp, info.rows(cfg.batch_size)).float()
                meter.count += 1
                self.after_step(step + 1, meter, tick)
                self.bar.update(1)
        finally:
            self.bar.close()
        return self.finish(meter)

    def data_parallel(self) -> DistributedDataParallel:
        """The model wrapped for ``torchrun``; told about parameters that get no gradient (``pos_embed.W_pos`` of a
        zero-layer shortformer model), which plain DDP would wait for forever."""
        tokens = torch.zeros((1, 2), dtype=torch.long, device=self.device)
        self.model(tokens, return_type="loss").backward()  # a probe: no optimizer step, the weights do not change
        unused = any(param.grad is None for param in self.model.parameters())
        self.model.zero_grad(set_to_none=True)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=unused)

    def optimizer_step(self, step: int, ddp: torch.nn.Module, rows: slice) -> torch.Tensor:
        """One AdamW step on step ``step``'s batch (a pure function of the seed and the step); returns the loss."""
        cfg = self.cfg
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = _rows_to(self.task.batch(step, cfg), rows, self.device)
        with autocast(self.device):
            loss = self.task.loss(ddp, batch) if self.info.enabled else self.loss_fn(batch)
        loss.backward()
        if cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        else:
            grad_norm = gradient_norm(self.model, self.device)
        self.guard.observe(loss, grad_norm)  # on CPU: raises before a non-finite step reaches the weights
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def after_step(self, done: int, meter: _Meter, tick: float) -> None:
        """Log, evaluate and checkpoint after ``done`` steps, as the schedule says."""
        cfg, checkpoint = self.cfg, done in self.checkpoint_steps
        if self.device.type == "cuda" and (done % cfg.log_every == 0 or checkpoint):
            torch.cuda.synchronize(self.device)
        meter.step_time += time.perf_counter() - tick
        if done - 1 in self.checkpoint_steps:  # the previous checkpoint, written during this step, is on disk before the next
            self.on_main(self.writer.flush)
        if done % cfg.log_every == 0 or checkpoint or done == cfg.steps:
            self.guard.check()  # nothing non-finite is logged or saved
            self.log_train(done, meter)
            if cfg.eval_every and done % cfg.eval_every == 0 and not checkpoint:
                self.on_main(lambda: self.evaluate_and_log(done))
        if checkpoint:
            self.on_main(lambda: self.save(done, meter.train_loss))
            meter.last_time = time.perf_counter()

    def log_train(self, done: int, meter: _Meter) -> None:
        meter.train_loss = float(distributed.mean_across(meter.loss_sum / meter.count, self.info))
        rate = (done - meter.last_step) * self.tokens_per_step / max(time.perf_counter() - meter.last_time, 1e-9)
        self.log({
            "kind": "train", "step": done, "tokens": done * self.tokens_per_step, "lr": lr_at(done - 1, self.cfg), "train_loss": meter.train_loss,
            "tokens_per_s": round(rate, 1), "elapsed_s": round(self.elapsed(), 3),
        })  # fmt: skip
        self.bar.set_postfix(loss=f"{meter.train_loss:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
        meter.reset(done)

    def evaluate_and_log(self, step: int) -> dict[str, Any]:
        """The task's metrics at ``step`` (``val_loss`` and more), logged; a non-finite validation loss stops training."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.task.evaluate(self.model, self.device)
        finally:
            self.model.train(was_training)
        val_loss = metrics.get("val_loss") if isinstance(metrics, dict) else None
        if not isinstance(val_loss, float):
            raise TypeError(f"{type(self.task).__name__}.evaluate must return a dict with a float 'val_loss', got {metrics!r:.200}")
        if not math.isfinite(val_loss):
            raise self.diverged(step, f"the validation loss is {val_loss}")
        self.log({"kind": "eval", "step": step, "tokens": step * self.tokens_per_step, **metrics})
        return metrics

    def save(self, step: int, train_loss: float | None) -> None:
        """Evaluate, log and write checkpoint ``step`` (only finite weights and optimizer states are ever written)."""
        cfg = self.cfg
        if not all_finite(self.model, self.optimizer):
            raise self.diverged(step, "the weights or the optimizer state are no longer finite numbers")
        metrics = {"train_loss": train_loss, **self.evaluate_and_log(step), "lr": lr_at(max(step - 1, 0), cfg)}
        folder = ckpt.step_dir(self.out_dir, step)
        tokens_seen = step * self.tokens_per_step
        record = {
            "step": step,
            "tokens_seen": tokens_seen,
            "final": step == cfg.steps,
            "train": cfg.to_dict(),
            "metrics": metrics,
            "data": self.data_info,
            "run": {"device": str(self.device), "world_size": self.info.world_size, "elapsed_s": round(self.elapsed(), 3)},
            "provenance": self.provenance,
        }
        training_state = {"step": step, "tokens_seen": tokens_seen, "elapsed_s": self.elapsed()}
        data = ckpt.capture(folder, self.model, self.task.tokenizer, record, optimizer=self.optimizer, training_state=training_state)
        self.writer.submit(data, then=lambda: ckpt.prune_optimizer_states(self.out_dir, keep=folder))  # written while training goes on
        self.last_checkpoint = folder

    def finish(self, meter: _Meter) -> TrainResult:
        cfg = self.cfg
        total = self.elapsed()
        session_tokens = (cfg.steps - self.start.step) * self.tokens_per_step
        final_folder = ckpt.step_dir(self.out_dir, cfg.steps)
        self.on_main(self.writer.flush)  # the final checkpoint is on disk (every rank learns if its write failed)
        if self.info.is_main:
            atomic_write_json(self.out_dir / ckpt.RUN_FILE, self.run_record(complete=True))
        metrics = ckpt.read_config(final_folder)["metrics"] if self.info.is_main else {"train_loss": meter.train_loss, "val_loss": float("nan")}
        return self.result(metrics, final_folder, total, session_tokens / max(meter.step_time, 1e-9))

    # -- helpers --
    def elapsed(self) -> float:
        """Training seconds so far, over every session of this run."""
        return self.start.elapsed_s + time.perf_counter() - self.session_start

    def log(self, record: dict) -> None:
        if self.info.is_main:
            with open(self.out_dir / ckpt.METRICS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json_line(record))

    def on_main(self, action: Callable[[], object]) -> None:
        """Run ``action`` on rank 0 only; every rank learns whether it failed (and raises), which also synchronises them."""
        ok, error = True, None
        if self.info.is_main:
            try:
                action()
            except Exception as caught:  # noqa: BLE001 - re-raised below, on every rank
                ok, error = False, caught
        if not distributed.all_ok(ok, self.info):
            if error is not None:
                raise error
            raise RuntimeError("rank 0 failed while writing the run folder; see its error above")

    def diverged(self, step: int | None, what: str) -> TrainingDivergedError:
        cfg = self.cfg
        where = f"at step {step} of {cfg.steps}" if step is not None else "in another process"
        kept = f"the last checkpoint ({self.last_checkpoint}) holds finite weights" if self.last_checkpoint else "no checkpoint was written"
        clip = f"stronger gradient clipping (grad_clip, now {cfg.grad_clip:g})" if cfg.grad_clip > 0 else "gradient clipping (grad_clip=1.0; it is off)"
        return TrainingDivergedError(
            f"training diverged {where}: {what}. Training stopped and saved nothing from there on; {kept}. "
            f"Try a lower learning rate (--lr, now {cfg.lr:g}), {clip} or a longer warmup (warmup_steps, now {cfg.warmup_steps}), in a new --out"
        )

    def result(self, metrics: dict, folder: Path, elapsed: float, rate: float) -> TrainResult:
        step = self.cfg.steps
        return TrainResult(
            run_dir=self.out_dir,
            checkpoint=folder,
            step=step,
            tokens_seen=step * self.cfg.batch_size * self.model_cfg.n_ctx,
            train_loss=metrics.get("train_loss"),
            val_loss=metrics.get("val_loss"),
            elapsed_s=float(elapsed),
            tokens_per_s=float(rate),
        )


def _rows_to(batch: Any, rows: slice, device: torch.device) -> Any:
    """This process's rows of a batch (a tensor or a tuple of tensors) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch[rows].to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_rows_to(part, rows, device) for part in batch)
    raise TypeError(f"a task's batch must be a tensor or a tuple of tensors, got {type(batch).__name__}")


def _check_same_mode(run: dict[str, Any], compiled: bool, out_dir: Path) -> None:
    if bool(run.get("compiled", False)) != compiled:
        was, now = ("compiled", "eager") if run.get("compiled") else ("eager", "compiled")
        raise ValueError(
            f"cannot resume {out_dir}: it was trained {was} and would resume {now}, which rounds differently; "
            f"resume with compiled={not compiled}, or choose another --out"
        )


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.05)
