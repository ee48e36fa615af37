"""The run record shown at the end of the report: what ran, on what, with which models, seeds and every training setting.

It reads the runner's state (:mod:`circuits.runner`) and never renders; the report layer shows it.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from typing import Any

from circuits.training.checkpoint import git_commit
from circuits.training.zoo import Zoo

__all__ = ["run_record", "model_record", "versions"]


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a report depends on (``None``: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in ("circuits", "torch", "transformer-lens", "numpy", "plotly", "kaleido", "tokenizers", "safetensors"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def model_record(zoo: Zoo, preset: str) -> dict:
    """Every setting of one zoo model, for the run record: data (mix included), seeds, optimizer, schedule, sizes; then the full configs."""
    model_cfg, train_cfg = zoo.configs(preset)
    return {
        "preset": preset,
        "seed_offset": zoo.seed_offset,
        "data": zoo.data_label(preset),
        "repeat_fraction": train_cfg.repeat_fraction,
        "model_seed": model_cfg.seed,
        "train_seed": train_cfg.seed,
        "steps": train_cfg.steps,
        "batch_size": train_cfg.batch_size,
        "n_ctx": model_cfg.n_ctx,
        "tokens": train_cfg.steps * train_cfg.batch_size * model_cfg.n_ctx,
        "lr": train_cfg.lr,
        "warmup_steps": train_cfg.warmup_steps,
        "min_lr_ratio": train_cfg.min_lr_ratio,
        "weight_decay": train_cfg.weight_decay,
        "n_layers": model_cfg.n_layers,
        "d_model": model_cfg.d_model,
        "n_heads": model_cfg.n_heads,
        "d_vocab": model_cfg.d_vocab,
        "positional": model_cfg.positional,
        "run": str(zoo.run_dir(preset)),
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
    }


def _models_record(state: Any) -> tuple[dict, dict]:
    """``({label: model_record}, {data label: [presets]})`` of every model this run used, every seed."""
    pairs = {pair for used in state.models_used.values() for pair in used}
    pairs |= {(z.seed_offset, p) for z in state.zoo.seed_zoos() for p in z.used}
    models: dict[str, dict] = {}
    data: dict[str, list[str]] = {}
    for offset, preset in sorted(pairs):
        zoo = state.zoo_for(offset)
        try:
            models[zoo.label(preset)] = record = model_record(zoo, preset)
        except Exception as error:  # noqa: BLE001 - the record lists what it can
            models[zoo.label(preset)] = {"error": str(error)}
            continue
        if preset not in data.setdefault(record["data"], []):
            data[record["data"]].append(preset)
    return models, data


def run_record(state: Any, names: Sequence[str], *, command: str) -> dict:
    """The run record shown at the end of the report: what ran, on what, with which models, seeds and settings."""
    commit, dirty = git_commit()
    zoo = state.zoo
    models, data = _models_record(state)
    status = {n: ("failed" if n in state.errors else "cached results" if state.cached.get(n) else "computed") for n in names}
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
        "quick": state.quick,
        "seeds": state.seeds,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "corpus_fingerprint": zoo.corpus.describe().get("fingerprint"),
        "zoo_key": state.zkey(0),
        "experiments": status,
        "seeded experiments": {n: [f"+{k}" for k in offsets] for n, offsets in state.seeds_run.items()},
        "training data": data,
        "models by experiment": {n: [state.zoo_for(k).label(p) for k, p in used] for n, used in state.models_used.items()},
        "packages": versions(),
        "zoo": zoo.describe(),
        "models": models,
        "experiment configs": state.configs,
    }
