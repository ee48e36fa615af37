"""Run folders are locked while trained: a second writer is refused at once, naming the holder, and changes nothing;
the lock dies with its holder (even by kill -9)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from circuits import train
from circuits.training import loop as loop_module
from circuits.training import task as task_module
from circuits.training import run_folder
from circuits.training.lock import LOCK_FILE, FolderLockedError, lock_folder, lock_holder

from fault_helpers import assert_same_run, needs_fork, paused_child, snapshot
from training_helpers import tiny_model_config, tiny_train_config, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def trainer(out: Path, corpus: Path, cache: Path):
    def run(resume: bool = True):
        return train(tiny_model_config(), tiny_train_config(), out_dir=out, corpus=corpus, cache_dir=cache, progress=False, device="cpu", resume=resume)

    return run


def test_a_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    folder = tmp_path / "runs"
    with lock_folder(folder, "runs folder") as held:
        assert held.held and lock_holder(folder) == os.getpid()
        with pytest.raises(FolderLockedError, match=rf"runs folder .*runs is in use by this process \(pid {os.getpid()}") as error:
            lock_folder(folder, "runs folder")
        assert error.value.holder_pid == os.getpid() and isinstance(error.value, OSError)
    assert not held.held
    lock_folder(folder).release()  # free again
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE]


@needs_fork
def test_the_lock_dies_with_its_holder(tmp_path):
    folder, point = tmp_path / "run", SimpleNamespace(reached=lambda: None)

    def hold():
        lock = lock_folder(folder)
        point.reached()
        lock.release()

    with paused_child(point, "reached", 1, hold) as pid:
        with pytest.raises(FolderLockedError, match=rf"in use by process {pid}, which holds its lock") as error:
            lock_folder(folder)
        assert error.value.holder_pid == pid
    lock_folder(folder).release()  # the holder was killed -9: its lock went with it


@needs_fork
def test_a_second_writer_of_a_running_run_is_refused_and_changes_nothing(tmp_path, corpus, cache):
    out = tmp_path / "run"
    run = trainer(out, corpus, cache)
    # Paused in step 7, holding the lock; no checkpoint write is in flight then (step 5's is on disk by the end of step 6).
    with paused_child(task_module, "sample_windows", 7, run) as pid:
        before = snapshot(out)
        for resume in (True, False):
            with pytest.raises(FolderLockedError, match=rf"run folder {out} is in use by process {pid}") as error:
                run(resume=resume)
            assert error.value.holder_pid == pid
        assert snapshot(out) == before  # no metrics line cut, no temporary removed, no run.json rewritten
    run()  # the holder was killed -9: its lock went with it, and the run resumes
    reference = tmp_path / "reference"
    trainer(reference, corpus, cache)(resume=False)
    assert_same_run(out, reference)


@needs_fork
def test_two_new_runs_in_one_new_folder(tmp_path, corpus, cache):
    out = tmp_path / "run"
    run = trainer(out, corpus, cache)
    with paused_child(run_folder, "atomic_write_json", 1, lambda: run(resume=False)) as pid:  # locked, run.json not written yet
        with pytest.raises(FolderLockedError, match=rf"in use by process {pid}"):
            run(resume=False)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]


def test_a_second_report_on_the_same_runs_folder_is_refused(tmp_path):
    """The runner locks ``--runs`` for the whole report: a second report there fails at once, naming the holder, and writes nothing."""
    from circuits.runner import run_experiments
    from circuits.training.lock import FolderLockedError, lock_folder

    runs = tmp_path / "runs"
    with lock_folder(runs, "runs folder"):
        with pytest.raises(FolderLockedError, match=f"runs folder {runs} is in use by this process \\(pid {os.getpid()}\\)"):
            run_experiments(["zero_layer"], quick=True, runs_dir=runs, progress=False, log=lambda m: None)
    assert sorted(p.name for p in runs.iterdir()) == [".lock"]
