"""The zoo trains several models at once in worker processes (what the report does before its experiments)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from circuits.training.parallel import presets_in, train_parallel
from circuits.training.zoo import Zoo, ZooSettings
from circuits.training.checkpoint import load

NAMES = ["attn-only-1l", "attn-only-0l"]


def _zoo(root, cache) -> Zoo:
    return Zoo(root, ZooSettings(quick=True), cache_dir=cache, progress=False)


def test_presets_in_reads_the_preset_fields_of_an_experiment_config():
    from circuits.experiments import induction_synthetic, one_layer, phase_change

    found = presets_in(phase_change.Config())
    assert {"attn-only-1l", "attn-only-2l", "attn-only-1l-smeared", "attn-only-2l-smeared"} <= set(found) and len(found) == len(set(found))
    assert presets_in(one_layer.Config()) == ["attn-only-1l", "attn-only-0l", "attn-only-2l"]
    assert presets_in(induction_synthetic.Config()) == []  # trains its own synthetic-data models


def test_parallel_runs_equal_one_thread_runs_in_this_process(tmp_path):
    cache = tmp_path / "cache"
    parallel = _zoo(tmp_path / "parallel", cache)
    lines: list[str] = []
    seconds = train_parallel(parallel, NAMES, workers=2, log=lines.append)
    assert sorted(seconds) == sorted(NAMES) and all(s > 0 for s in seconds.values())
    assert any("2 processes" in line for line in lines), lines
    assert train_parallel(parallel, NAMES, workers=2) == {}  # complete runs are not trained again

    serial = _zoo(tmp_path / "serial", cache)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: same reduction order, same bits
    try:
        for name in NAMES:
            serial.ensure(name)
    finally:
        torch.set_num_threads(threads)
    for name in NAMES:
        a, _ = load(parallel.run_dir(name))
        b, _ = load(serial.run_dir(name))
        for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), f"{name}: {key} differs between the worker and the in-process run"


def test_ensure_many_records_training_time_once(tmp_path):
    zoo = _zoo(tmp_path / "runs", tmp_path / "cache")
    seconds = zoo.ensure_many(["attn-only-0l"], workers=1, log=lambda m: None)
    assert set(seconds) == {"attn-only-0l"}
    assert zoo.timings["attn-only-0l"] == pytest.approx(seconds["attn-only-0l"], rel=0.5)  # not counted twice
    assert zoo.ensure_many(["attn-only-0l"]) == {}


@pytest.mark.parametrize("workers", [0, -1, True])
def test_bad_worker_counts_are_refused(tmp_path, workers):
    zoo = _zoo(tmp_path / "runs", tmp_path / "cache")
    with pytest.raises(ValueError, match="workers="):
        train_parallel(zoo, NAMES, workers=workers)


def test_report_command_refuses_a_bad_worker_count(capsys):
    from circuits.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--quick", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers '0'" in capsys.readouterr().err


def test_report_survives_a_failing_parallel_stage(tmp_path, monkeypatch):
    from circuits.report import make_report

    def broken(self, names, **kwargs):
        raise RuntimeError("worker pool broke")

    monkeypatch.setattr(Zoo, "ensure_many", broken)
    lines: list[str] = []
    run = make_report(["zero_layer"], quick=True, out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                      png=False, progress=False, log=lines.append)
    assert run.ok, run.errors
    assert any("worker pool broke" in line for line in lines), lines
    assert "attn-only-0l" in run.trained  # trained in-process by the experiment instead


def test_make_report_refuses_a_bad_worker_count(tmp_path):
    from circuits.report import make_report

    with pytest.raises(ValueError, match="workers=0"):
        make_report(["zero_layer"], quick=True, out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", workers=0)


ORPHANS = textwrap.dedent(
    """
    import os, signal, sys, time
    from circuits.training.parallel import worker_pool

    def pid_after(seconds):
        time.sleep(seconds)
        return os.getpid()

    if __name__ == "__main__":
        pool = worker_pool(2, 1)
        pids = set()
        while len(pids) < 2:  # both workers started (and through their initializer)
            pids |= {f.result() for f in [pool.submit(pid_after, 0.2) for _ in range(2)]}
        for _ in range(4):
            pool.submit(time.sleep, 120)  # busy, like workers training the queued models
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of the parent (the report)
    """
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHANS)
    process = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    workers = [int(pid) for pid in process.stdout.split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their killed parent"


def test_a_worker_whose_parent_is_already_gone_exits():
    code = "import os; from circuits.training.parallel import die_with_parent; die_with_parent(os.getppid() + 1); print('survived')"
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 1 and "survived" not in process.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_failing_parent_kills_its_busy_workers():
    from circuits.training.parallel import _stop_workers, worker_pool

    pool = worker_pool(2, 1)
    for _ in range(3):
        pool.submit(time.sleep, 120)
    deadline = time.monotonic() + 60
    while len(pool._processes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = list(pool._processes)
    _stop_workers(pool)  # what train_parallel does when its loop raises (an error, Ctrl-C)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)]


def test_run_jobs_orders_by_readiness_then_chain_length_and_skips_jobs_after_a_failure():
    import operator

    from circuits.training.parallel import Job, run_jobs

    ended: list[tuple[str, object, str | None]] = []

    def done(label):
        return lambda value, error: ended.append((label, value, None if error is None else f"{type(error).__name__}: {error}"))

    jobs = [
        Job("a", operator.add, (1, 2), on_done=done("a")),
        Job("b", operator.mul, (3, 4), after=("a",), on_done=done("b")),
        Job("c", operator.sub, (9, 1), cost_s=3.0, on_done=done("c")),  # ready and the longest chain (3 > 1 + 1): before "a"
        Job("d", operator.truediv, (1, 0), after=("elsewhere",), on_done=done("d")),  # a label no job has: counts as done
        Job("e", operator.neg, (5,), after=("d",), on_done=done("e")),
    ]
    run_jobs(jobs, workers=1)
    # one worker, longest chain first (c 3; a 1 + b 1; d 1 + e 1; ties in list order), e ends when d fails
    assert [label for label, _, _ in ended] == ["c", "a", "d", "e", "b"]
    outcome = {label: (value, error) for label, value, error in ended}
    assert outcome["c"] == (8, None) and outcome["a"] == (3, None) and outcome["b"] == (12, None)
    assert outcome["d"][1].startswith("ZeroDivisionError")
    assert outcome["e"] == (None, "RuntimeError: e was not run: d failed")


def test_report_computes_in_the_training_workers_with_the_same_claims(tmp_path):
    from circuits.runner import run_experiments

    names, cache = ["zero_layer", "one_layer"], tmp_path / "cache"
    lines: list[str] = []
    ahead = run_experiments(names, quick=True, runs_dir=tmp_path / "ahead", cache_dir=cache, progress=False, log=lines.append,
                            workers=2, compute_ahead=True)
    assert not ahead.errors, ahead.errors
    assert any(line.startswith("then, in the same processes") for line in lines), lines
    assert [n for n in names if f"computed {n} in a worker" in "\n".join(lines)] == names, lines  # the worker's line
    assert sum(": computed in a worker" in line for line in lines) == len(names), lines  # the experiment loop read the workers' results
    assert ahead.cached == {n: False for n in names} and {f"{n}: compute" for n in names} <= set(ahead.timings)
    assert ahead.record["models by experiment"]["one_layer"]  # the models a worker read are in the run record
    here = run_experiments(names, quick=True, runs_dir=tmp_path / "here", cache_dir=cache, progress=False, log=lambda m: None,
                           workers=2, compute_ahead=False)
    for a, b in zip(ahead.sections, here.sections):
        assert [(c.key, c.holds) for c in a.claims] == [(c.key, c.holds) for c in b.claims]
    again = run_experiments(names, quick=True, runs_dir=tmp_path / "ahead", cache_dir=cache, progress=False, log=lambda m: None,
                            workers=2, compute_ahead=True)
    assert again.cached == {n: True for n in names}  # what the workers cached is read back


def test_chain_levels_add_the_longest_chain_that_waits_for_a_job():
    from circuits.training.parallel import Job, chain_levels

    jobs = [
        Job("train 3l", abs, (1,), cost_s=125.0), Job("train 1l", abs, (1,), cost_s=60.0), Job("train 2l", abs, (1,), cost_s=95.0),
        Job("compute variants", abs, (1,), after=("train 3l", "train 2l"), cost_s=13.0),
        Job("compute phase", abs, (1,), after=("train 1l", "train 2l"), cost_s=95.0),
        Job("compute alone", abs, (1,), cost_s=132.0),
    ]
    level = chain_levels(jobs)
    assert level == {"train 3l": 138.0, "train 1l": 155.0, "train 2l": 190.0, "compute variants": 13.0, "compute phase": 95.0,
                     "compute alone": 132.0}
    # the 1l model, whose long compute waits for it, ranks above the longer 3l model, whose compute is short
    assert sorted(level, key=lambda k: -level[k])[:3] == ["train 2l", "train 1l", "train 3l"]
    cycle = chain_levels([Job("x", abs, (1,), after=("y",), cost_s=1.0), Job("y", abs, (1,), after=("x",), cost_s=2.0)])
    assert cycle == {"x": 3.0, "y": 2.0} or cycle == {"x": 1.0, "y": 3.0}  # finite: a cycle counts once


def test_the_compute_here_flag_reaches_the_runner(monkeypatch, tmp_path):
    import circuits.report.make as make

    seen: dict = {}

    def fake_make_report(names, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(make, "make_report", fake_make_report)
    from circuits.cli import main

    for argv, expected in ((["--compute-here"], False), ([], None)):
        seen.clear()
        with pytest.raises(SystemExit):
            main(["report", "--quick", "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), *argv])
        assert seen["compute_ahead"] is expected
        assert ("--compute-here" in seen["command"]) == bool(argv)  # the run record's command says so
