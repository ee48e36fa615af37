"""Checkpoints: one folder per saved step, safetensors + JSON only (no pickle anywhere).

A run folder (``circuits train --out DIR``)::

    DIR/run.json                       what this run is (configs, corpus); marks the folder as ours
    DIR/metrics.jsonl                  one JSON object per log / eval event (non-finite numbers as null)
    DIR/.lock                          held while a process trains the run (holds its pid; circuits.training.lock)
    DIR/checkpoints/step_000000/       one folder per checkpoint (step 0 = the initialisation)
        model.safetensors              weights (float32)
        config.json                    model + training config, step, losses, data and provenance
        tokenizer.json                 the BPE (``circuits.Tokenizer.load``)
        training_state.json            step and counters for --resume
        optimizer.safetensors          AdamW moments (kept in the newest checkpoint only)

Every checkpoint folder is written under a temporary name and renamed when complete, so a
killed process leaves the previous checkpoints intact. ``circuits.train`` captures each
checkpoint (a copy of the weights and optimizer state of its step) and writes it on a background
thread (:class:`CheckpointWriter`) while training goes on: the files and their bytes are those
of a synchronous write. ``circuits.load(path)`` accepts a
checkpoint folder or a run folder (then the newest checkpoint).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from circuits.atomic import atomic_directory, json_text
from circuits.config import TransformerConfig
from circuits.model import Transformer
from circuits.model.finite import check_finite
from circuits.training.tokenizer import Tokenizer

FORMAT = "circuits-checkpoint"
RUN_FORMAT = "circuits-run"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
STATE_FILE = "training_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint in a run folder, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / CONFIG_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


# ---- writing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointData:
    """Everything one checkpoint folder holds, copied out of the live model and optimizer (see :func:`capture`)."""

    folder: Path
    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    tokenizer_json: str | None  # None: a model that reads no tokens (no tokenizer.json is written)
    training_state: dict[str, Any] | None
    optimizer_tensors: dict[str, torch.Tensor] | None
    optimizer_groups: list[dict] | None


def capture(
    folder: Path,
    model: Transformer,
    tokenizer: Tokenizer | None,
    info: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    training_state: dict[str, Any] | None = None,
) -> CheckpointData:
    """A copy of what :func:`save_checkpoint` writes, taken now: training may go on while it is written."""
    weights = {name: _copy(tensor) for name, tensor in model.state_dict().items()}
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict(), **info}
    if tokenizer is None:  # recorded only then, so token models' configs are unchanged
        config["has_tokenizer"] = False
    tensors, groups = optimizer_to_safetensors(optimizer, model) if optimizer is not None else (None, None)
    if tensors is not None:
        tensors = {name: _copy(tensor) for name, tensor in tensors.items()}
    tokenizer_json = tokenizer.to_json() if tokenizer is not None else None
    return CheckpointData(Path(folder), weights, config, tokenizer_json, training_state, tensors, groups)


def write_checkpoint(data: CheckpointData) -> Path:
    """Write one captured checkpoint folder atomically (under a temporary name, renamed when complete)."""
    with atomic_directory(data.folder) as tmp:
        save_file(data.weights, str(tmp / MODEL_FILE), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
        _write_json(tmp / CONFIG_FILE, data.config)
        if data.tokenizer_json is not None:
            (tmp / TOKENIZER_FILE).write_text(data.tokenizer_json, encoding="utf-8")
        if data.training_state is not None:
            _write_json(tmp / STATE_FILE, data.training_state)
        if data.optimizer_tensors is not None:
            metadata = {"format": FORMAT, "param_groups": json.dumps(data.optimizer_groups)}
            save_file(data.optimizer_tensors, str(tmp / OPTIMIZER_FILE), metadata=metadata)
    return data.folder


def save_checkpoint(
    folder: Path,
    model: Transformer,
    tokenizer: Tokenizer,
    info: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint folder atomically. ``info`` goes into ``config.json`` next to the model config."""
    return write_checkpoint(capture(folder, model, tokenizer, info, optimizer=optimizer, training_state=training_state))


class CheckpointWriter:
    """Writes checkpoints on one background thread, in order, while training goes on.

    Each write is a :class:`CheckpointData` captured on the training thread (so the weights are
    those of its step) plus what must follow it (pruning older optimizer states). At most one
    write is in flight: :meth:`submit` first waits for the previous one. A write's error is
    raised by the next :meth:`submit` or by :meth:`flush`. What a killed process leaves is what
    the synchronous writer left: complete checkpoint folders and, at worst, a temporary one.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="circuits-checkpoint-writer")
        self._pending: Future | None = None

    def submit(self, data: CheckpointData, then: Callable[[], object] = lambda: None) -> None:
        self.flush()
        self._pending = self._pool.submit(lambda: (write_checkpoint(data), then()))

    def flush(self) -> None:
        """Wait for the write in flight; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> BaseException | None:
        """Finish the write in flight and stop the thread; returns the write's error (instead of raising it)."""
        try:
            self.flush()
            return None
        except Exception as error:  # noqa: BLE001 - handed to the caller, who may be raising another error
            return error
        finally:
            self._pool.shutdown(wait=True)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json_text(data), encoding="utf-8")  # non-finite floats as null (see circuits.atomic)


def optimizer_to_safetensors(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """AdamW state as named tensors (``state.<param name>.<key>``) plus JSON-able param groups."""
    names = {id(param): name for name, param in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}
    groups = []
    for group in optimizer.param_groups:
        hyper = {key: (list(value) if isinstance(value, tuple) else value) for key, value in group.items() if key != "params"}
        groups.append({**hyper, "params": [names[id(param)] for param in group["params"]]})
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                tensors[f"state.{names[id(param)]}.{key}"] = tensor.detach().cpu().contiguous()
    return tensors, groups


def load_optimizer_state(folder: Path, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Restore what :func:`optimizer_to_safetensors` wrote into an optimizer built over the same model.

    A parameter that had no state when saved (AdamW keeps none for a parameter that never got a
    gradient, e.g. ``pos_embed.W_pos`` of a zero-layer shortformer model) gets none now, exactly as
    in the optimizer that was saved. All or nothing: on a mismatch ``optimizer`` is left unchanged.
    """
    path = Path(folder) / OPTIMIZER_FILE
    tensors = _read_safetensors(path)
    params = dict(model.named_parameters())
    names = {id(param): name for name, param in params.items()}
    current = [[names[id(param)] for param in group["params"]] for group in optimizer.param_groups]
    saved = _saved_param_names(path)
    if saved is not None and saved != current:
        raise ValueError(f"{path} holds the optimizer of other parameters ({_first_difference(saved, current)}); the checkpoint does not match this model")
    by_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        prefix, field = key.rsplit(".", 1)
        by_param.setdefault(prefix.removeprefix("state."), {})[field] = value
    unknown = sorted(set(by_param) - {name for group in current for name in group})
    if unknown:
        raise ValueError(f"{path} has optimizer state for parameters this model does not train: {unknown[:5]}; the checkpoint does not match this model")
    fields = {frozenset(state) for state in by_param.values()}
    if len(fields) > 1:
        raise ValueError(f"{path} is inconsistent: parameters hold different optimizer fields {sorted(sorted(f) for f in fields)}")
    restored = {
        params[name]: {key: (value.to(params[name].device) if key != "step" else value) for key, value in state.items()}
        for name, state in by_param.items()
    }
    optimizer.state.clear()
    optimizer.state.update(restored)


def _saved_param_names(path: Path) -> list[list[str]] | None:
    """The parameter names of each param group, from the file's metadata (``None``: no metadata)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        groups = json.loads(metadata["param_groups"]) if "param_groups" in metadata else None
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable optimizer file ({error}); it may be truncated or not ours") from None
    if groups is None:
        return None
    return [list(group.get("params", [])) for group in groups]


def _first_difference(saved: list[list[str]], current: list[list[str]]) -> str:
    flat_saved = [name for group in saved for name in group]
    flat_current = [name for group in current for name in group]
    missing, extra = sorted(set(flat_current) - set(flat_saved)), sorted(set(flat_saved) - set(flat_current))
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    return f"groups {[len(g) for g in saved]} saved vs {[len(g) for g in current]} now"


def prune_optimizer_states(run_dir: Path, keep: Path) -> None:
    """Delete ``optimizer.safetensors`` from every checkpoint but ``keep`` (resume only needs the newest)."""
    for _, folder in list_checkpoints(run_dir):
        if folder != keep:
            (folder / OPTIMIZER_FILE).unlink(missing_ok=True)


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy that later in-place updates of ``tensor`` do not reach."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return tensor.clone(memory_format=torch.contiguous_format)
    return tensor.cpu().contiguous()


# ---- reading ------------------------------------------------------------------------------
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from a checkpoint folder or a run folder (its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint or run folder at {path}")
    if (path / CONFIG_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if checkpoints:
        return checkpoints[-1][1]
    raise ValueError(
        f"{path} is neither a circuits checkpoint (no {CONFIG_FILE}) nor a run folder with checkpoints "
        f"(no {CHECKPOINTS}/step_*/); point at a folder written by `circuits train`"
    )


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint (``path`` may be a run folder), checked to be ours."""
    folder = resolve_checkpoint(path)
    config = _read_json(folder / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG_FILE} is not a circuits checkpoint config (no \"format\": \"{FORMAT}\"); was it written by another tool?")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder} has checkpoint format version {config.get('format_version')}; this circuits reads version {FORMAT_VERSION}")
    return config


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[Transformer, Tokenizer | None]:
    """Load ``(model, tokenizer)`` from a checkpoint or run folder; the tokenizer is also attached as ``model.tokenizer``
    (``None`` for a model trained on a task without tokens, whose config says ``"has_tokenizer": false``).

    The model is in eval mode. Raises ``ValueError`` for folders that are not ours, truncated
    files, weights that do not match the stored config, or non-finite weights (naming the parameter).
    """
    folder = resolve_checkpoint(path)
    config = read_config(folder)
    model = Transformer(TransformerConfig.from_dict(config["model"]))
    load_weights(model, folder)
    check_finite(model, source=folder)
    if config.get("has_tokenizer", True) is False:  # a model that reads no tokens (images, a task with its own encoding)
        model.tokenizer = None
        return model.to(device).eval(), None
    tokenizer = Tokenizer.load(folder / TOKENIZER_FILE)
    if tokenizer.vocab_size > model.config.d_vocab:
        raise ValueError(
            f"{folder}: tokenizer has {tokenizer.vocab_size} tokens but the model's d_vocab is {model.config.d_vocab}; "
            "the files come from different runs"
        )
    model.tokenizer = tokenizer
    return model.to(device).eval(), tokenizer


def load_weights(model: Transformer, folder: Path) -> None:
    """Copy ``model.safetensors`` into ``model``, checking names and shapes."""
    path = Path(folder) / MODEL_FILE
    tensors = _read_safetensors(path)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, the config implies {tuple(expected[name].shape)}")
    model.load_state_dict(tensors, strict=True)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path.name} in {path.parent}; the checkpoint is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error}); it may be truncated or not ours") from None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it may be truncated or not ours") from None


def read_json(path: Path) -> Any:
    """Read a JSON file with the clear errors of this module."""
    return _read_json(Path(path))


# ---- provenance ---------------------------------------------------------------------------
def provenance() -> dict[str, Any]:
    """Package versions, git commit of the code, host, and time: recorded in every checkpoint."""
    import numpy
    import tokenizers

    from importlib.metadata import PackageNotFoundError, version

    try:
        circuits_version = version("circuits")
    except PackageNotFoundError:
        circuits_version = None
    commit, dirty = git_commit()
    return {
        "circuits": circuits_version,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@functools.lru_cache(maxsize=1)
def git_commit() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None
