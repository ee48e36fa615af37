"""``circuits.train``: the training loop (AdamW, warmup + cosine, clipping, eval, checkpoints, resume, DDP).

Reproducibility: the model is initialised from ``model_cfg.seed`` and step ``t``'s batch is a
pure function of ``(train_cfg.seed, t)``, so on CPU two runs with the same configs produce
bitwise identical weights, and a run resumed from any checkpoint (weights + AdamW moments, no
RNG state needed) ends exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from circuits.training import checkpoint as ckpt
from circuits.training import distributed
from circuits.atomic import atomic_write_json, atomic_write_text, remove_stale_temporaries
from circuits.config import TransformerConfig
from circuits.training.data import Corpus, TokenData, check_stream, eval_windows, find_corpus, get_tokenizer, get_tokens, sample_windows, split_corpus, step_generator
from circuits.model import Transformer
from circuits.training.tokenizer import Tokenizer
from circuits.training.config import TrainConfig


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
    """AdamW with weight decay on matrices (``ndim >= 2``) only; biases, gains and smear weights are not decayed."""
    decay = [param for param in model.parameters() if param.ndim >= 2]
    no_decay = [param for param in model.parameters() if param.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


@torch.no_grad()
def evaluate(model: Transformer, windows: torch.Tensor, batch_size: int, device: torch.device) -> tuple[float, list[float]]:
    """Mean validation loss and its value at each position (entry ``i``: predicting token ``i + 1``)."""
    was_training = model.training
    model.eval()
    total = torch.zeros(windows.shape[1] - 1, dtype=torch.float64)
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(device)
        with _autocast(device):
            per_token = model(batch, return_type="per_token_loss")
        total += per_token.double().sum(dim=0).cpu()
    model.train(was_training)
    by_pos = total / len(windows)
    return float(by_pos.mean()), by_pos.tolist()


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- the run folder -----------------------------------------------------------------------
def _identity(model_cfg: TransformerConfig, train_cfg: TrainConfig, corpus: Corpus) -> dict[str, Any]:
    return {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "corpus_fingerprint": corpus.fingerprint}


def tokenize_corpus(corpus: Corpus, model_cfg: TransformerConfig, train_cfg: TrainConfig, cache_dir: Path | None) -> tuple[Tokenizer, TokenData]:
    """The BPE and the encoded train/validation streams a run with these configs trains on (both cached on disk by content)."""
    tokenizer = get_tokenizer(
        corpus, model_cfg.d_vocab, val_fraction=train_cfg.val_fraction, max_train_chars=train_cfg.tokenizer_train_chars, cache_dir=cache_dir
    )
    return tokenizer, get_tokens(corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=cache_dir)


def check_out_dir(out_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Refuse folders holding someone else's files; return the existing ``run.json`` (or ``None`` for a new run)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; choose a new folder for the run")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return None
    run_file = out_dir / ckpt.RUN_FILE
    run = ckpt.read_json(run_file) if run_file.is_file() else None
    if not isinstance(run, dict) or run.get("format") != ckpt.RUN_FORMAT:
        entries = sorted(child.name for child in out_dir.iterdir())
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"output folder {out_dir} already holds files that are not a circuits run ({shown}); "
            "nothing was written: choose an empty or new folder with --out"
        )
    if not resume:
        done = ckpt.list_checkpoints(out_dir)
        where = f"up to step {done[-1][0]} of {run['train']['steps']}" if done else "no checkpoint yet"
        raise ValueError(
            f"output folder {out_dir} already holds a circuits run ({where}); pass --resume (resume=True) "
            "to continue or reuse it, or choose another --out"
        )
    return run


def _check_same_run(run: dict[str, Any], identity: dict[str, Any], out_dir: Path) -> None:
    differences = []
    for section in ("model", "train"):
        for key in sorted(set(run.get(section, {})) | set(identity[section])):
            if run.get(section, {}).get(key) != identity[section].get(key):
                differences.append(f"{section}.{key}: {run.get(section, {}).get(key)!r} in the folder vs {identity[section].get(key)!r} now")
    if run.get("corpus_fingerprint") != identity["corpus_fingerprint"]:
        differences.append("the corpus content changed")
    if differences:
        raise ValueError(
            f"cannot resume {out_dir}: it holds a run with different settings ({'; '.join(differences[:6])}); "
            "resume with the same settings, or choose another --out"
        )


def _resume_point(out_dir: Path) -> tuple[int, Path] | None:
    """The newest checkpoint that has an optimizer state (resume needs one)."""
    for step, folder in reversed(ckpt.list_checkpoints(out_dir)):
        if (folder / ckpt.OPTIMIZER_FILE).is_file() and (folder / ckpt.STATE_FILE).is_file():
            return step, folder
    return None


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the metric lines up to ``last_step`` (drops what a killed run logged after its last checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and record.get("step", math.inf) <= last_step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


# ---- training -----------------------------------------------------------------------------
def train(
    model_cfg: TransformerConfig,
    train_cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike,
    corpus: str | os.PathLike | Corpus | None = None,
    resume: bool = False,
    device: str | torch.device = "auto",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a model on ``corpus`` (default: the Python standard library) and write checkpoints to ``out_dir``.

    ``resume=True`` continues from the newest checkpoint in ``out_dir`` (starting fresh if the
    folder is empty, returning at once if the run is complete). Under ``torchrun`` this runs
    data-parallel (see :mod:`circuits.training.distributed`); ``train_cfg.batch_size`` is the global batch.
    """
    if not isinstance(model_cfg, TransformerConfig):
        raise TypeError(f"model_cfg must be a TransformerConfig, got {type(model_cfg).__name__}")
    if not isinstance(train_cfg, TrainConfig):
        raise TypeError(f"train_cfg must be a TrainConfig, got {type(train_cfg).__name__}")
    if model_cfg.mask != "causal":
        raise ValueError(f"circuits.train trains causal language models; model_cfg.mask={model_cfg.mask!r} is not supported")
    info = distributed.from_environment()
    if train_cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size={train_cfg.batch_size} is not divisible by the {info.world_size} processes; use a multiple of {info.world_size}")
    torch_device = distributed.resolve_device(device, info)
    distributed.setup(info, torch_device)
    try:
        with torch.enable_grad():  # a caller inside torch.no_grad() (e.g. an analysis asking a zoo for a model) still trains
            return _Trainer(model_cfg, train_cfg, Path(out_dir), corpus, resume, torch_device, cache_dir, progress, info).run()
    finally:
        distributed.teardown(info)


class _Trainer:
    def __init__(self, model_cfg, train_cfg, out_dir, corpus, resume, device, cache_dir, progress, info):
        self.model_cfg, self.cfg, self.out_dir = model_cfg, train_cfg, out_dir
        self.corpus_spec, self.resume, self.device = corpus, resume, device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress, self.info = progress, info

    # -- setup --
    def prepare(self) -> tuple[Corpus, Tokenizer, TokenData, dict | None]:
        existing = check_out_dir(self.out_dir, self.resume)  # before anything is read or written
        corpus = self.corpus_spec if isinstance(self.corpus_spec, Corpus) else find_corpus(self.corpus_spec)
        identity = _identity(self.model_cfg, self.cfg, corpus)
        if existing is not None:
            _check_same_run(existing, identity, self.out_dir)
        tokenizer, tokens = tokenize_corpus(corpus, self.model_cfg, self.cfg, self.cache_dir)
        check_stream(tokens.train, self.model_cfg.n_ctx, "training")
        check_stream(tokens.val, self.model_cfg.n_ctx, "validation")
        return corpus, tokenizer, tokens, existing

    def run(self) -> TrainResult:
        ok, error = True, None
        if self.info.is_main:
            try:
                corpus, tokenizer, tokens, existing = self.prepare()
            except Exception as caught:  # shared with the other ranks below, then re-raised
                ok, error = False, caught
        if not distributed.all_ok(ok, self.info):
            if error is not None:
                raise error
            raise RuntimeError("rank 0 failed while preparing the data or the output folder; see its error above")
        if not self.info.is_main:
            corpus, tokenizer, tokens, existing = self.prepare_follower()
        return self.loop(corpus, tokenizer, tokens, existing)

    def prepare_follower(self):
        corpus = self.corpus_spec if isinstance(self.corpus_spec, Corpus) else find_corpus(self.corpus_spec)
        return corpus, *tokenize_corpus(corpus, self.model_cfg, self.cfg, self.cache_dir), None

    # -- the loop --
    def loop(self, corpus: Corpus, tokenizer: Tokenizer, tokens: TokenData, existing: dict | None) -> TrainResult:
        cfg, info, device = self.cfg, self.info, self.device
        model = Transformer(self.model_cfg).to(device)
        model.tokenizer = tokenizer
        optimizer = make_optimizer(model, cfg)
        start_step, elapsed = 0, 0.0
        point = _resume_point(self.out_dir) if (self.resume and existing is not None) else None
        if point is not None:
            start_step, folder = point
            ckpt.load_weights(model, folder)
            ckpt.load_optimizer_state(folder, optimizer, model)
            elapsed = float(ckpt.read_json(folder / ckpt.STATE_FILE).get("elapsed_s", 0.0))
        data_info = {
            "corpus": corpus.describe(),
            "split": split_corpus(corpus, cfg.val_fraction).describe(),
            "tokenizer_hash": tokenizer.hash,
            "tokenizer_vocab_size": tokenizer.vocab_size,
            "n_train_tokens": int(len(tokens.train)),
            "n_val_tokens": int(len(tokens.val)),
            "token_cache": str(tokens.path),
        }
        metrics_path = self.out_dir / ckpt.METRICS_FILE
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out_dir / ckpt.CHECKPOINTS)
            remove_stale_temporaries(self.out_dir)
            run_record = {"format": ckpt.RUN_FORMAT, "format_version": ckpt.FORMAT_VERSION, **_identity(self.model_cfg, cfg, corpus), "data": data_info, "complete": False}
            if existing is None or point is None:
                atomic_write_json(self.out_dir / ckpt.RUN_FILE, run_record)
                _truncate_metrics(metrics_path, -1)
            else:
                _truncate_metrics(metrics_path, start_step)
        checkpoint_steps = set(cfg.checkpoint_steps)
        windows = eval_windows(tokens.val, self.model_cfg.n_ctx, cfg.eval_windows, tokens.bos_id)
        provenance = ckpt.provenance()
        tokens_per_step = cfg.batch_size * self.model_cfg.n_ctx
        state = {"last": None}

        def log(record: dict) -> None:
            if info.is_main:
                with open(metrics_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")

        def save(step: int, train_loss: float | None) -> Path:
            val_loss, by_pos = evaluate(model, windows, cfg.batch_size, device)
            metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_loss_by_pos": by_pos, "lr": lr_at(max(step - 1, 0), cfg)}
            log({"kind": "eval", "step": step, "tokens": step * tokens_per_step, "val_loss": val_loss, "val_loss_by_pos": by_pos})
            folder = ckpt.step_dir(self.out_dir, step)
            record = {
                "step": step,
                "tokens_seen": step * tokens_per_step,
                "final": step == cfg.steps,
                "train": cfg.to_dict(),
                "metrics": metrics,
                "data": data_info,
                "run": {"device": str(device), "world_size": info.world_size, "elapsed_s": round(elapsed + clock(), 3)},
                "provenance": provenance,
            }
            training_state = {"step": step, "tokens_seen": step * tokens_per_step, "elapsed_s": elapsed + clock()}
            ckpt.save_checkpoint(folder, model, tokenizer, record, optimizer=optimizer, training_state=training_state)
            ckpt.prune_optimizer_states(self.out_dir, keep=folder)
            state["last"] = (folder, val_loss)
            return folder

        session_start = time.perf_counter()
        clock = lambda: time.perf_counter() - session_start  # noqa: E731
        if info.is_main and point is None:
            save(0, None)
        distributed.barrier(info)
        if start_step >= cfg.steps:  # resuming a finished run
            final = ckpt.read_config(self.out_dir)
            return self._result(final["metrics"], ckpt.resolve_checkpoint(self.out_dir), cfg.steps, final["run"]["elapsed_s"], 0.0)

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else model
        model.train()
        rows = info.rows(cfg.batch_size)
        bar = _progress_bar(cfg.steps, start_step, enabled=self.progress and info.is_main)
        loss_sum, loss_count, last_log_time, last_log_step = torch.zeros((), device=device), 0, time.perf_counter(), start_step
        step_time, train_loss = 0.0, None
        for step in range(start_step, cfg.steps):
            tick = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = sample_windows(
                tokens.train, self.model_cfg.n_ctx, cfg.batch_size, step_generator(cfg.seed, step), tokens.bos_id, cfg.repeat_fraction
            )
            batch = batch[rows].to(device, non_blocking=True)
            with _autocast(device):
                loss = ddp(batch, return_type="loss")
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            loss_count += 1
            done = step + 1
            if device.type == "cuda" and (done % cfg.log_every == 0 or done in checkpoint_steps):
                torch.cuda.synchronize(device)
            step_time += time.perf_counter() - tick
            if done % cfg.log_every == 0 or done in checkpoint_steps or done == cfg.steps:
                train_loss = float(distributed.mean_across(loss_sum / loss_count, info))
                now = time.perf_counter()
                rate = (done - last_log_step) * tokens_per_step / max(now - last_log_time, 1e-9)
                log({"kind": "train", "step": done, "tokens": done * tokens_per_step, "lr": lr, "train_loss": train_loss, "tokens_per_s": round(rate, 1), "elapsed_s": round(elapsed + clock(), 3)})
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
                loss_sum.zero_()
                loss_count, last_log_time, last_log_step = 0, now, done
                if cfg.eval_every and done % cfg.eval_every == 0 and done not in checkpoint_steps and info.is_main:
                    val_loss, by_pos = evaluate(model, windows, cfg.batch_size, device)
                    log({"kind": "eval", "step": done, "tokens": done * tokens_per_step, "val_loss": val_loss, "val_loss_by_pos": by_pos})
            if done in checkpoint_steps:
                if info.is_main:
                    save(done, train_loss)
                distributed.barrier(info)
                last_log_time = time.perf_counter()
            bar.update(1)
        bar.close()
        total = elapsed + clock()
        session_tokens = (cfg.steps - start_step) * tokens_per_step
        final_folder = ckpt.step_dir(self.out_dir, cfg.steps)
        if info.is_main:
            run_record["complete"] = True
            atomic_write_json(self.out_dir / ckpt.RUN_FILE, run_record)
        metrics = ckpt.read_config(final_folder)["metrics"] if info.is_main else {"train_loss": train_loss, "val_loss": float("nan")}
        return self._result(metrics, final_folder, cfg.steps, total, session_tokens / max(step_time, 1e-9))

    def _result(self, metrics: dict, folder: Path, step: int, elapsed: float, rate: float) -> TrainResult:
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


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, smoothing=0.05)
