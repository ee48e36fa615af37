"""Fault injection for the training tests: run training in a forked child that dies by SIGKILL at a chosen point.

A forked child is a real process killed by a real ``kill -9`` (no ``finally`` runs, no buffer is
flushed, temporaries stay behind), without the seconds a fresh interpreter needs to import torch.
The patches live in the child only; the parent (pytest) is never touched.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch
from safetensors.torch import load_file

import circuits.training.checkpoint as ckpt
import circuits.training.loop as loop
import circuits.training.task as task_module
import circuits.training.run_folder as run_folder
from circuits.training.lock import LOCK_FILE

needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork (Linux)")

#: Where a child can be killed: (module, function, what the call is). ``save_file`` is called twice per
#: checkpoint (weights, optimizer state); ``sample_windows`` once per step; ``json_line`` once per metrics
#: line; ``atomic_write_text`` (in run_folder) by the resume's metrics truncation.
KILL_POINTS: dict[str, tuple[object, str]] = {
    "step": (task_module, "sample_windows"),
    "checkpoint file": (ckpt, "save_file"),
    "metrics line": (loop, "json_line"),
    "optimizer prune": (ckpt, "prune_optimizer_states"),
    "resume cleanup": (run_folder, "atomic_write_text"),
}


def die_at_call(module: object, name: str, n: int) -> None:
    """Patch ``module.name`` so that its ``n``-th call kills the process (half-writing the file first for ``save_file``)."""
    real = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            if name == "save_file":
                Path(args[1]).write_bytes(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


def in_child(action: Callable[[], object]) -> bool:
    """Run ``action`` in a forked child; True if it died by SIGKILL, False if it returned (fails on any other end)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            action()
        except BaseException:  # noqa: BLE001 - reported through the exit status
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, f"child died by signal {os.WTERMSIG(status)}"
        return True
    assert os.WEXITSTATUS(status) == 0, f"child failed with exit status {os.WEXITSTATUS(status)} (traceback above)"
    return False


def killed_at(point: str, n: int, train: Callable[[], object]) -> bool:
    """Train in a child that is killed at the ``n``-th call of kill point ``point``; True if it was killed."""

    def action() -> None:
        module, name = KILL_POINTS[point]
        die_at_call(module, name, n)
        train()

    return in_child(action)


# ---- comparing runs ---------------------------------------------------------------------------
def strip_timing(line: str) -> dict:
    return {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "elapsed_s")}


def metrics(run: Path) -> list[dict]:
    return [strip_timing(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def checkpoint_weights(run: Path) -> dict[int, dict[str, torch.Tensor]]:
    return {step: load_file(folder / ckpt.MODEL_FILE) for step, folder in ckpt.list_checkpoints(run)}


def assert_same_run(run: Path, reference: Path) -> None:
    """Every checkpoint bitwise equal, the same metrics lines (no step lost or duplicated), a clean, complete folder."""
    got, want = checkpoint_weights(run), checkpoint_weights(reference)
    assert sorted(got) == sorted(want)
    for step in want:
        assert got[step].keys() == want[step].keys()
        for name in want[step]:
            assert torch.equal(got[step][name], want[step][name]), f"step {step}: {name} differs from the uninterrupted run"
    lines = metrics(run)
    assert lines == metrics(reference)
    assert len({(line["kind"], line["step"]) for line in lines}) == len(lines)  # no duplicated line
    assert json.loads((run / "run.json").read_text())["complete"] is True
    with_optimizer = [folder.name for _, folder in ckpt.list_checkpoints(run) if (folder / ckpt.OPTIMIZER_FILE).exists()]
    assert with_optimizer == [ckpt.list_checkpoints(run)[-1][1].name]
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes) but the lock file, to check that something changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


def strict_json(text: str):
    """``json.loads`` that refuses the non-standard NaN / Infinity tokens."""

    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@contextmanager
def paused_child(module: object, name: str, n: int, action: Callable[[], object]) -> Iterator[int]:
    """Run ``action`` in a forked child that pauses (holding whatever it holds) at the ``n``-th call of ``module.name``.

    Yields the child's pid once it is paused; the child is killed with SIGKILL on exit.
    """
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            real, calls = getattr(module, name), [0]

            def pause(*args, **kwargs):
                calls[0] += 1
                if calls[0] == n:
                    os.write(write_end, b"paused")
                    time.sleep(300)
                return real(*args, **kwargs)

            setattr(module, name, pause)
            action()
        finally:
            os._exit(3)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 120)
        assert ready and os.read(read_end, 16) == b"paused", "the child never reached its pause point"
        yield pid
    finally:
        os.close(read_end)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
