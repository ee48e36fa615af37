"""A run folder around training: who may write it, where a resumed run starts, and what resuming cleans up.

The rules (the README's "Faults and recovery" section states them for users):

- Nothing is written before every check passed: a folder holding someone else's files, a run
  with other settings, a run that cannot be resumed, or a folder locked by another process are
  refused with the folder exactly as it was (:func:`check_out_dir`, :func:`check_same_run`,
  :func:`plan_start`).
- A resumed run starts from the newest checkpoint whose weights *and* optimizer state load
  (:func:`plan_start`). AdamW's moments cannot be recomputed from the weights, so a folder where no
  checkpoint has them is refused rather than resumed inexactly.
- Then, and only then, :func:`prepare_folder` deletes what the interrupted process left after that
  checkpoint: temporaries, newer checkpoint folders (rewritten identically by the resumed run) and
  the ``metrics.jsonl`` lines of later steps (each dropped once; none is duplicated or lost,
  because the resumed run logs exactly the steps after the checkpoint).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuits.atomic import TMP_PREFIX, atomic_write_json, atomic_write_text, remove_stale_temporaries
from circuits.model import Transformer
from circuits.training import checkpoint as ckpt
from circuits.training.lock import LOCK_FILE

__all__ = ["StartPoint", "check_out_dir", "check_same_run", "plan_start", "load_start", "prepare_folder", "truncate_metrics"]


@dataclass(frozen=True)
class StartPoint:
    """Where training starts: ``step`` (0 for a new run), the checkpoint it resumes from, and the seconds already spent."""

    step: int
    folder: Path | None = None
    elapsed_s: float = 0.0
    finished: bool = False


def check_out_dir(out_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Refuse folders holding someone else's files; return the existing ``run.json`` (or ``None`` for a new run)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; choose a new folder for the run")
    entries = sorted(child.name for child in out_dir.iterdir() if child.name != LOCK_FILE) if out_dir.exists() else []
    if not entries:
        return None
    run_file = out_dir / ckpt.RUN_FILE
    run = ckpt.read_json(run_file) if run_file.is_file() else None
    if not isinstance(run, dict) or run.get("format") != ckpt.RUN_FORMAT:
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


#: Keys of ``run.json`` that describe a run but are not part of its identity.
_RECORD_ONLY = frozenset({"format", "format_version", "compiled", "data", "complete"})


def check_same_run(run: dict[str, Any], identity: dict[str, Any], out_dir: Path) -> None:
    """Refuse to resume a run trained with other settings or on other data."""
    differences = []
    for section in ("model", "train"):
        for key in sorted(set(run.get(section, {})) | set(identity[section])):
            if run.get(section, {}).get(key) != identity[section].get(key):
                differences.append(f"{section}.{key}: {run.get(section, {}).get(key)!r} in the folder vs {identity[section].get(key)!r} now")
    for key in sorted((set(run) | set(identity)) - {"model", "train"} - _RECORD_ONLY):  # the data, the parent weights, the frozen names
        if run.get(key) != identity.get(key):
            what = "the corpus content changed" if key == "corpus_fingerprint" else f"{key}: {run.get(key)!r:.120} in the folder vs {identity.get(key)!r:.120} now"
            differences.append(what)
    if differences:
        raise ValueError(
            f"cannot resume {out_dir}: it holds a run with different settings ({'; '.join(differences[:6])}); "
            "resume with the same settings, or choose another --out"
        )


# ---- where to start ---------------------------------------------------------------------------
def plan_start(out_dir: Path, existing: dict[str, Any] | None, steps: int, model: Transformer, optimizer: torch.optim.Optimizer) -> StartPoint:
    """Where a run in ``out_dir`` starts; a resume point's weights and optimizer state are loaded into ``model`` and ``optimizer``.

    Reads only. A new run (or a run folder without checkpoints) starts at 0; a finished one is
    returned as it is; otherwise the newest checkpoint whose weights, optimizer state and training
    state all load is the resume point, and a folder without one raises ``ValueError``.
    """
    checkpoints = ckpt.list_checkpoints(out_dir) if existing is not None else []
    if not checkpoints:
        return StartPoint(0)
    if checkpoints[-1][0] == steps:
        return StartPoint(steps, checkpoints[-1][1], finished=True)
    problems = []
    for step, folder in reversed(checkpoints):
        if not (folder / ckpt.OPTIMIZER_FILE).is_file():
            continue
        try:
            elapsed = load_start(folder, model, optimizer)
        except (ValueError, FileNotFoundError) as error:
            problems.append(f"step {step}: {error}")
            continue
        return StartPoint(step, folder, elapsed)
    found = [str(step) for step, _ in checkpoints]
    shown = ", ".join(found if len(found) <= 4 else found[:3] + ["...", found[-1]])
    detail = f" ({'; '.join(problems[:2])})" if problems else ""
    raise ValueError(
        f"cannot resume {out_dir}: none of its checkpoints (steps {shown}) "
        f"has a readable optimizer state{detail}. Only the newest checkpoint keeps one, and resuming from weights alone "
        "would not reproduce the uninterrupted run, so nothing was changed. Train again in a new --out (or delete this "
        "folder); its checkpoints still load with circuits.load"
    )


def load_start(folder: Path, model: Transformer, optimizer: torch.optim.Optimizer) -> float:
    """Load a resume point's weights and optimizer state; return the training seconds it records."""
    state = ckpt.read_json(folder / ckpt.STATE_FILE)
    if not isinstance(state, dict):
        raise ValueError(f"{folder / ckpt.STATE_FILE} is not a training state (expected a JSON object)")
    ckpt.load_weights(model, folder)
    ckpt.load_optimizer_state(folder, optimizer, model)
    elapsed = state.get("elapsed_s", 0.0)
    return float(elapsed) if isinstance(elapsed, (int, float)) and math.isfinite(elapsed) else 0.0


# ---- writing, once every check passed ---------------------------------------------------------
def prepare_folder(out_dir: Path, start: StartPoint, run_record: dict[str, Any]) -> None:
    """Make ``out_dir`` hold exactly the run up to ``start``: the first write of a training session (lock held)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir / ckpt.CHECKPOINTS)
    remove_stale_temporaries(out_dir)
    metrics = out_dir / ckpt.METRICS_FILE
    if start.folder is None:
        atomic_write_json(out_dir / ckpt.RUN_FILE, run_record)
        truncate_metrics(metrics, -1)
        return
    for step, folder in ckpt.list_checkpoints(out_dir):
        if step > start.step:  # newer than the resume point but unusable: rewritten (identically) by this run
            _remove_folder(folder)
    truncate_metrics(metrics, start.step)
    if start.finished:  # killed after the final checkpoint, before pruning or before marking run.json complete?
        ckpt.prune_optimizer_states(out_dir, keep=start.folder)
        if not _complete(out_dir):
            atomic_write_json(out_dir / ckpt.RUN_FILE, {**run_record, "complete": True})


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the metric lines up to ``last_step`` (drops what a killed run logged after its last checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= last_step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _remove_folder(folder: Path) -> None:
    """Rename to a temporary name first (one atomic step), so a kill midway leaves no half folder under a step name."""
    trash = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + folder.name + ".", dir=folder.parent))
    os.replace(folder, trash / folder.name)
    shutil.rmtree(trash, ignore_errors=True)


def _complete(out_dir: Path) -> bool:
    try:
        return bool(ckpt.read_json(out_dir / ckpt.RUN_FILE).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False
