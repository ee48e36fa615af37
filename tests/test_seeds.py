"""Several seeds: zoos per seed offset, claims aggregated over seeds, every seed's models trained ahead, the run record.

The runner tests use the quick zoo and two seeds: the zero-layer section (its model is the
cheapest) and a small fake seeded experiment whose verdicts depend on the seed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from dataclasses import dataclass

import pytest

import circuits.experiments as registry
from circuits.experiments import base
from circuits.experiments.base import Claim, Section, aggregate_claims, config_for_seed, is_seeded, seeds_verdict
from circuits.report import make_report
from circuits.report.html import render, seeds_text, value_text
from circuits.runner import DEFAULT_SEEDS, QUICK_SEEDS, check_seeds, default_seeds, seeds_note
from circuits.training.presets import get_preset
from circuits.training.zoo import Zoo, ZooSettings


def _claim(key: str, holds: bool | None, value: float | None = None, **kw) -> Claim:
    return Claim(key=key, statement=f"{key} statement", source="paper", paper_value="p", measured=f"measured {value}", holds=holds, value=value, **kw)


# ---- the verdict over seeds (pure) ---------------------------------------------------------------
def test_seeds_verdict_holds_only_on_every_tested_seed():
    assert seeds_verdict(3, 3) is True
    assert seeds_verdict(2, 3) is False
    assert seeds_verdict(0, 3) is False
    assert seeds_verdict(1, 1) is True
    assert seeds_verdict(0, 0) is None  # no seed could test it
    with pytest.raises(ValueError, match="held=4"):
        seeds_verdict(4, 3)


def test_aggregate_claims_counts_seeds_and_spreads_values():
    seed0 = [_claim("a", True, 0.5, models=("attn-only-2l",), data="d"), _claim("b", True, 1.0), _claim("c", None)]
    seed1 = [_claim("a", True, 0.7), _claim("b", False, -1.0), _claim("c", None)]
    seed2 = [_claim("a", True, 0.6), _claim("b", True, 2.0), _claim("c", True, 3.0)]
    a, b, c = aggregate_claims([seed0, seed1, seed2])
    assert (a.holds, a.seeds_held, a.seeds_tested, a.seeds_run, a.value_range) == (True, 3, 3, 3, (0.5, 0.7))
    assert a.measured == "measured 0.5" and a.models == ("attn-only-2l",) and a.data == "d"  # seed 0's text
    assert (b.holds, b.seeds_held, b.seeds_tested, b.value_range) == (False, 2, 3, (-1.0, 2.0))  # fails on one seed: fails
    assert (c.holds, c.seeds_held, c.seeds_tested, c.seeds_run) == (True, 1, 1, 3)  # untested on two seeds, held on the third
    assert c.measured == "measured None"  # still seed 0's text (the report's seeds column says 1 of 1, 2 untested)


def test_aggregate_claims_missing_extra_duplicate_and_nan():
    seed0 = [_claim("a", True, float("nan")), _claim("dup", True, 1.0), _claim("dup", False, 2.0)]
    seed1 = [_claim("dup", True, 3.0), _claim("dup", True, 4.0), _claim("late", False, 5.0)]
    a, dup0, dup1, late = aggregate_claims([seed0, seed1])
    assert (a.holds, a.seeds_tested, a.value_range) == (True, 1, None)  # missing from seed 1: untested there; NaN is no value
    assert (dup0.holds, dup0.value_range) == (True, (1.0, 3.0)) and (dup1.holds, dup1.value_range) == (False, (2.0, 4.0))  # matched in order
    assert (late.key, late.holds, late.seeds_tested, late.seeds_run) == ("late", False, 1, 2)  # only a later seed made it: still listed
    assert aggregate_claims([[]]) == []
    one = aggregate_claims([[_claim("x", False, 0.1)]])[0]
    assert (one.holds, one.seeds_held, one.seeds_tested, one.seeds_run, one.value_range) == (False, 0, 1, 1, (0.1, 0.1))


def test_config_for_seed_shifts_the_seed_field_only():
    @dataclass(frozen=True)
    class WithSeed:
        seed: int = 4
        preset: str = "attn-only-2l"

    @dataclass(frozen=True)
    class NoSeed:
        preset: str = "attn-only-0l"

    assert config_for_seed(WithSeed(), 2) == WithSeed(seed=6)
    assert config_for_seed(WithSeed(), 0) == WithSeed()
    assert config_for_seed(NoSeed(), 2) == NoSeed()


def test_the_paper_claims_experiments_are_seeded():
    import ast
    from pathlib import Path

    for name in ("zero_layer", "one_layer", "two_layer", "phase_change", "induction_synthetic"):
        tree = ast.parse((Path(registry.__file__).parent / f"{name}.py").read_text(encoding="utf-8"))
        opt_in = [node for node in tree.body if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["SEEDED"]]
        assert len(opt_in) == 1 and getattr(opt_in[0].value, "value", None) is True, name
    assert is_seeded(registry.load("induction_synthetic"))
    assert not is_seeded(registry.load("real_model"))  # a pretrained model: one seed
    assert config_for_seed(registry.load("induction_synthetic").Config(), 1).seed == 1  # its own models take the shifted seed


def test_seed_counts():
    assert (default_seeds(False), default_seeds(True)) == (DEFAULT_SEEDS, QUICK_SEEDS) and DEFAULT_SEEDS >= 3
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="seeds="):
            check_seeds(bad)
    check_seeds(None)
    assert "one seed" in seeds_note(1) and "3 seeds" in seeds_note(3) and "+1 failed" in seeds_note(3, ["+1"])


# ---- zoos per seed offset ------------------------------------------------------------------------
def test_zoo_seed_offset_shifts_seeds_and_run_folders(tmp_path):
    zoo = Zoo(tmp_path, ZooSettings())
    other = zoo.with_seed_offset(2)
    assert zoo.with_seed_offset(0) is zoo and zoo.with_seed_offset(2) is other and other.with_seed_offset(0) is zoo
    assert [z.seed_offset for z in zoo.seed_zoos()] == [0, 2]
    preset = get_preset("attn-only-2l")
    assert zoo.configs("attn-only-2l") == (preset.model, preset.train)  # offset 0: the preset as defined, today's run folder
    model_cfg, train_cfg = other.configs("attn-only-2l")
    assert (model_cfg.seed, train_cfg.seed) == (preset.model.seed + 2, preset.train.seed + 2)
    assert model_cfg.replace(seed=preset.model.seed) == preset.model and dataclasses.replace(train_cfg, seed=preset.train.seed) == preset.train
    assert zoo.run_dir("attn-only-2l").name.startswith("attn-only-2l-") and "-s" not in zoo.run_dir("attn-only-2l").name[len("attn-only-2l"):]
    assert other.run_dir("attn-only-2l").name.startswith("attn-only-2l-s2-") and other.run_dir("attn-only-2l") != zoo.run_dir("attn-only-2l")
    assert (zoo.label("attn-only-2l"), other.label("attn-only-2l")) == ("attn-only-2l", "attn-only-2l seed +2")
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="seed_offset"):
            ZooSettings(seed_offset=bad)


def test_zoo_data_labels(tmp_path):
    assert Zoo(tmp_path, ZooSettings()).data_label("attn-only-2l") == "stdlib corpus; 50% of windows with a copied span at random offsets (augmented)"
    assert Zoo(tmp_path, ZooSettings()).data_label("attn-only-2l-corpus") == "stdlib corpus only"
    assert Zoo(tmp_path, ZooSettings(quick=True)).data_label("attn-only-2l-corpus") == "stdlib json package corpus only"


def test_ensure_many_trains_seed_offset_pairs(tmp_path):
    zoo = Zoo(tmp_path / "runs", ZooSettings(quick=True), cache_dir=tmp_path / "cache", progress=False)
    seconds = zoo.ensure_many([(1, "attn-only-0l")], workers=1, log=lambda m: None)
    assert list(seconds) == ["attn-only-0l seed +1"]
    assert "attn-only-0l" in zoo.with_seed_offset(1).timings and not zoo.timings  # timed in the zoo that owns it
    assert (zoo.with_seed_offset(1).run_dir("attn-only-0l") / "run.json").is_file() and not zoo.run_dir("attn-only-0l").exists()
    assert zoo.ensure_many(["attn-only-0l"], seed_offsets=[0, 1], workers=1, log=lambda m: None).keys() == {"attn-only-0l"}


def test_worker_pool_trains_every_seed(tmp_path):
    from circuits.training.checkpoint import load

    zoo = Zoo(tmp_path / "runs", ZooSettings(quick=True), cache_dir=tmp_path / "cache", progress=False)
    lines: list[str] = []
    seconds = zoo.ensure_many(["attn-only-0l"], seed_offsets=[1, 2], workers=2, log=lines.append)
    assert set(seconds) == {"attn-only-0l seed +1", "attn-only-0l seed +2"} and any("2 processes" in line for line in lines)
    for offset in (1, 2):
        seeded = zoo.with_seed_offset(offset)
        assert seeded.timings["attn-only-0l"] == seconds[f"attn-only-0l seed +{offset}"]  # the worker's time, in the zoo that owns the run
        model, _ = load(seeded.run_dir("attn-only-0l"))
        assert model.cfg.seed == offset


# ---- the runner and the report over two seeds ----------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FakeConfig:
    preset: str = "attn-only-0l"
    seed: int = 10

    @classmethod
    def quick(cls) -> "FakeConfig":
        return cls()


@dataclass(frozen=True, kw_only=True)
class FakeResult(base.Result):
    seed: int
    zoo_offset: int
    model_seed: int


def _fake_module(fail_offset: int | None = None) -> types.ModuleType:
    module = types.ModuleType("circuits.experiments.fake_seeded")
    module.NAME, module.TITLE, module.SEEDED = "fake_seeded", "Fake seeded", True
    module.Config, module.Result = FakeConfig, FakeResult

    def compute(cfg, zoo):
        if zoo.seed_offset == fail_offset:
            raise RuntimeError(f"seed +{fail_offset} broke")
        model, _ = zoo.model(cfg.preset)
        return FakeResult(seed=cfg.seed, zoo_offset=zoo.seed_offset, model_seed=model.cfg.seed)

    def claims(result):
        return [
            Claim(key="always", statement="s", source="x", paper_value="p", measured=str(result.seed), holds=True, value=float(result.seed)),
            Claim(key="seed_ten", statement="s", source="x", paper_value="p", measured=str(result.seed), holds=result.seed == 10, value=float(result.model_seed)),
        ]

    module.compute, module.claims = compute, claims
    module.figures = lambda result: []
    module.intro = lambda result: f"seed {result.seed} offset {result.zoo_offset}"
    return module


@pytest.fixture
def fake_registry(monkeypatch):
    def install(module):
        monkeypatch.setitem(sys.modules, "circuits.experiments.fake_seeded", module)
        monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "fake_seeded"])

    return install


def test_report_tests_seeded_claims_on_every_seed(tmp_path, fake_registry):
    fake_registry(_fake_module())
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    lines: list[str] = []
    run = make_report(["zero_layer", "fake_seeded"], quick=True, seeds=2, out_dir=tmp_path / "out", runs_dir=runs, cache_dir=cache,
                      png=False, progress=False, log=lines.append, workers=1)
    assert run.ok, run.errors
    zero, fake = run.sections
    assert fake.intro == "seed 10 offset 0"  # the section is seed 0's
    always, seed_ten = fake.claims
    assert (always.holds, always.seeds_held, always.seeds_tested, always.seeds_run, always.value_range) == (True, 2, 2, 2, (10.0, 11.0))
    assert (seed_ten.holds, seed_ten.seeds_held, seed_ten.seeds_tested) == (False, 1, 2)  # seed +1 (config seed 11) fails it
    assert seed_ten.value_range == (0.0, 1.0)  # model seeds 0 and 1: each seed read its own zoo
    assert all(c.seeds_run == 2 for c in zero.claims) and any("2 seeds" in note for note in zero.notes)
    # every seed's model trained ahead, in the training stage, not inside compute
    assert {"train models", "train attn-only-0l", "train attn-only-0l seed +1"} <= set(run.timings)
    assert not any("computing" in line and "training 0.0 s" not in line for line in lines if "computed in" in line)
    assert {"attn-only-0l", "attn-only-0l seed +1"} <= set(run.trained)
    # one cache file per experiment and seed
    cached = sorted(json.loads(p.read_text())["seed_offset"] for p in (runs / "results").glob("fake_seeded-*.json"))
    assert cached == [0, 1]
    # the run record: every model of every seed with its training settings
    html = run.html.read_text(encoding="utf-8")
    assert 'data-model="attn-only-0l seed +1"' in html and 'id="models-table"' in html
    assert 'data-seeds="1 of 2"' in html and "How to read this table" in html and "50% of windows with a copied span" in html
    # a rerun reads both seeds from the cache and trains nothing
    again = make_report(["fake_seeded"], quick=True, seeds=2, out_dir=tmp_path / "out2", runs_dir=runs, cache_dir=cache,
                        png=False, progress=False, log=lambda m: None, workers=1)
    assert again.cached == {"fake_seeded": True} and again.trained == {}
    assert [c.seeds_held for c in again.sections[0].claims] == [2, 1]


def test_a_failing_later_seed_keeps_the_section_and_is_reported(tmp_path, fake_registry):
    fake_registry(_fake_module(fail_offset=1))
    run = make_report(["fake_seeded"], quick=True, seeds=2, out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                      png=False, progress=False, log=lambda m: None, workers=1)
    assert list(run.errors) == ["fake_seeded seed +1"] and "seed +1 broke" in run.errors["fake_seeded seed +1"]
    always, seed_ten = run.sections[0].claims
    assert (always.holds, always.seeds_held, always.seeds_tested, always.seeds_run) == (True, 1, 1, 2)
    assert any("+1 failed" in note for note in run.sections[0].notes)
    assert not run.ok  # the report's exit status says so


def test_one_seed_by_default_in_quick_mode(tmp_path, fake_registry):
    fake_registry(_fake_module())
    run = make_report(["fake_seeded"], quick=True, out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                      png=False, progress=False, log=lambda m: None, workers=1)
    assert [(c.seeds_tested, c.seeds_run) for c in run.sections[0].claims] == [(1, 1), (1, 1)]
    assert run.record["seeds"] == QUICK_SEEDS and run.record["seeded experiments"] == {"fake_seeded": ["+0"]}


def test_report_command_refuses_a_bad_seed_count(capsys):
    from circuits.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--quick", "--seeds", "0"])
    assert exit_info.value.code == 2
    assert "--seeds '0'" in capsys.readouterr().err


# ---- rendering ---------------------------------------------------------------------------------
def test_claims_table_shows_seeds_values_models_and_data():
    seeded = aggregate_claims([
        [_claim("a", True, 0.5, models=("attn-only-2l",), data="stdlib corpus only"), _claim("u", None)],
        [_claim("a", False, 0.2), _claim("u", None)],
        [_claim("a", True, 0.9), _claim("u", None)],
    ])
    single = _claim("s", True, 0.25, models=("minilm",))
    assert [seeds_text(c) for c in seeded] == ["2 of 3", "untested on 3"] and seeds_text(single) == "1 (single run)"
    assert value_text(seeded[0]) == "0.2 to 0.9" and value_text(single) == "0.25" and value_text(seeded[1]) == ""
    section = Section(key="x", title="X", intro="i", claims=[*seeded, single])
    record = {"seeds": 3, "training data": {"stdlib corpus; 50% of windows with a copied span at random offsets (augmented)": ["attn-only-2l"],
                                            "stdlib corpus only": ["attn-only-2l-corpus"]}}
    html = render([section], record, plotly_js="", title="t")
    assert 'data-claim="a" data-holds="no"' in html and 'data-seeds="2 of 3"' in html and "0.2 to 0.9" in html
    assert "attn-only-2l (3 seeds each)" in html and "stdlib corpus only" in html and "attn-only-2l-corpus" in html
    assert "How to read this table" in html and "run on 3 seed(s)" in html

def test_config_for_seed_applies_the_configs_own_for_seed_after_the_shift():
    @dataclass(frozen=True)
    class Dropping:
        seed: int = 0
        presets: tuple = ("attn-only-2l", "attn-only-2l-corpus")

        def for_seed(self, offset):
            return dataclasses.replace(self, presets=self.presets[:1])

    assert config_for_seed(Dropping(), 0) == Dropping()  # seed 0: untouched, for_seed not called
    assert config_for_seed(Dropping(), 1) == Dropping(seed=1, presets=("attn-only-2l",))


def test_phase_change_trains_its_corpus_only_control_on_seed_0_only():
    from circuits.experiments import phase_change
    from circuits.training.parallel import presets_in

    cfg = phase_change.Config()
    assert cfg.corpus_control in presets_in(config_for_seed(cfg, 0))
    for offset in (1, 2):
        shifted = config_for_seed(cfg, offset)
        assert presets_in(shifted) == [p for p in presets_in(cfg) if p != cfg.corpus_control]
        assert shifted.seed == offset and shifted.corpus_control == ""


def test_a_compute_that_fails_in_a_worker_is_computed_again_in_process(tmp_path, fake_registry):
    fake_registry(_fake_module())  # registered in this process only: a spawned worker cannot load it
    lines: list[str] = []
    run = make_report(["fake_seeded"], quick=True, seeds=2, out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                      png=False, progress=False, log=lines.append, workers=2, compute_ahead=True)
    assert run.ok, run.errors  # the worker's failure is logged, the in-process compute succeeds, so no error section
    failed = [line for line in lines if line.startswith("computing fake_seeded") and "in a worker failed" in line]
    assert len(failed) == 2 and "unknown experiment 'fake_seeded'" in failed[0], lines
    assert sum("fake_seeded" in line and ": computed in" in line and "in a worker" not in line for line in lines) == 2, lines
    assert [c.seeds_tested for c in run.sections[0].claims] == [2, 2]
