"""The zoo trains several models at once in worker processes (what the report does before its experiments)."""

from __future__ import annotations

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

    assert presets_in(phase_change.Config()) == ["attn-only-1l", "attn-only-2l", "attn-only-1l-smeared", "attn-only-2l-smeared"]
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
