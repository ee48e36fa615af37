"""The experiment runner: plan the models the experiments need, train them, compute or read each experiment's cached result, collect failures.

Stages, each timed into the run record: first the zoo models that the uncached experiments name
in their configs are trained, ``workers`` processes at a time
(:meth:`~circuits.training.zoo.Zoo.ensure_many`); then for every experiment, *compute* (a typed
result; models it asks for that are still missing are trained in-process and timed separately),
then *build* (its :class:`~circuits.experiments.base.Section`: figures, tables, claims). A
result is cached as ``<runs>/results/<NAME>-<config key>-<zoo key>.json`` (written atomically,
with a hash of the experiment's source so that a code change recomputes), so an interrupted run
resumes with what finished and a rerun only rebuilds figures. A failing experiment becomes an
error section with its traceback; the others still run.

Seeds: an experiment module with ``SEEDED = True`` is computed once per seed offset
``0 .. seeds - 1`` (a zoo per offset, the config's ``seed`` shifted too; see
:mod:`circuits.experiments.base`), each result cached on its own and every seed's models trained
in the parallel stage. Its section is built from seed 0 and its claims are the aggregate over the
seeds (:func:`~circuits.experiments.base.aggregate_claims`): a claim holds only if it holds on
every seed that could test it. ``seeds`` defaults to :data:`DEFAULT_SEEDS` (:data:`QUICK_SEEDS`
in quick mode). A failure of a seed other than 0 keeps the section (that seed counts as untested)
and is reported as an error of ``"<name> seed +k"``.

This module sits between the experiments (below) and the report (above): it never renders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import circuits.experiments as registry
from circuits.atomic import atomic_write_json
from circuits.experiments import ExperimentMissing, load
from circuits.run_record import run_record
from circuits.experiments.base import (
    Claim, Section, aggregate_claims, build_section, config_for_seed, config_key, digest, is_seeded, result_from_json, result_to_json,
)
from circuits.training.parallel import Job, default_workers, presets_in
from circuits.training.lock import lock_folder
from circuits.training.presets import PRESETS
from circuits.training.zoo import CODE_VERSION, Zoo, ZooSettings

__all__ = ["ExperimentsRun", "run_experiments", "zoo_key", "check_workers", "check_seeds", "default_seeds", "DEFAULT_SEEDS", "QUICK_SEEDS"]

#: Seconds of one compute on one core when the experiment module does not say (its ``COMPUTE_S``); orders the work only.
DEFAULT_COMPUTE_S = 10.0

#: Seeds of the seeded experiments in a full report, and in quick mode (a smoke test: one seed keeps it fast).
DEFAULT_SEEDS = 3
QUICK_SEEDS = 1


@dataclass
class ExperimentsRun:
    """What :func:`run_experiments` did: one section per experiment, failures, cache hits, timings, the run record."""

    sections: list[Section]
    errors: dict[str, str]  # experiment name -> traceback or reason
    cached: dict[str, bool]  # experiment name -> its result came from the cache
    timings: dict[str, float]
    trained: dict[str, float]  # preset -> training seconds in this process
    record: dict = field(default_factory=dict)


class TrackingZoo(Zoo):
    """A :class:`~circuits.training.zoo.Zoo` that remembers which presets were asked for (for the run record)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: list[str] = []  # every preset asked for
        self.recent: list[str] = []  # those asked for since the runner last cleared it (one experiment's compute)

    def ensure(self, name: str) -> Path:
        for seen in (self.used, self.recent):
            if name not in seen:
                seen.append(name)
        return super().ensure(name)


def zoo_key(zoo: Zoo) -> str:
    """Hash of what the zoo's models depend on: settings, corpus, training code version, every preset's run folder name."""
    settings = zoo.settings.key_fields()
    return digest({"settings": settings, "corpus": zoo.corpus.fingerprint, "code": CODE_VERSION, "runs": sorted(zoo.run_dir(n).name for n in PRESETS)})


def check_seeds(seeds: Any) -> None:
    """Refuse a seed count that is not a positive int (``None`` = :func:`default_seeds`)."""
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds={seeds!r} must be a positive integer, e.g. 3 (or None: {DEFAULT_SEEDS}, {QUICK_SEEDS} in quick mode)")


def default_seeds(quick: bool) -> int:
    return QUICK_SEEDS if quick else DEFAULT_SEEDS


def check_workers(workers: Any) -> None:
    """Refuse a worker count that is not a positive int (``None`` = one per CPU core)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive integer (or None: one per CPU core)")


def source_hash(module: ModuleType) -> str:
    """12 hex digits of SHA-256 over a module's source file ("unknown" when it has none)."""
    try:
        return hashlib.sha256(Path(getattr(module, "__file__", None)).read_bytes()).hexdigest()[:12]
    except (OSError, TypeError):
        return "unknown"


def log_stderr(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def error_section(name: str, title: str) -> Section:
    return Section(key=name, title=title, intro=f"The <code>{name}</code> experiment did not produce results; the error is below (the other sections are unaffected).")


@dataclass
class _State:
    """What the experiment loop accumulates."""

    zoo: TrackingZoo  # seed offset 0; zoo.with_seed_offset(k) for the others
    results_dir: Path
    quick: bool
    recompute: bool
    log: Callable[[str], None]
    seeds: int = 1
    zkeys: dict[int, str] = field(default_factory=dict)  # seed offset -> zoo_key
    prefetched: dict[tuple[str, int], Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    models_used: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # experiment -> (seed offset, preset)
    seeds_run: dict[str, list[int]] = field(default_factory=dict)  # seeded experiment -> seed offsets computed
    compute_ahead: bool = False  # uncached results are computed by the training stage's workers
    ahead: dict[tuple[str, int], dict] = field(default_factory=dict)  # (experiment, offset) -> compute_and_cache info, from a worker

    def zoo_for(self, offset: int) -> TrackingZoo:
        return self.zoo.with_seed_offset(offset)

    def zkey(self, offset: int) -> str:
        if offset not in self.zkeys:
            self.zkeys[offset] = zoo_key(self.zoo_for(offset))
        return self.zkeys[offset]

    def offsets(self, module: ModuleType) -> list[int]:
        return list(range(self.seeds)) if is_seeded(module) else [0]


def run_experiments(
    names: Sequence[str] | None = None,
    *,
    quick: bool = False,
    runs_dir: str | Path = "runs",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    recompute: bool = False,
    zoo_settings: ZooSettings | None = None,
    command: str = "circuits report",
    log: Callable[[str], None] = log_stderr,
    workers: int | None = None,
    seeds: int | None = None,
    compute_ahead: bool | None = None,
) -> ExperimentsRun:
    """Run experiments ``names`` (default: all of :data:`circuits.experiments.EXPERIMENTS`, in that order) and return their sections.

    Before the experiments run, the zoo models that the uncached experiments name in their
    configs are trained, ``workers`` processes at a time (default: one per CPU core), for every
    seed of the seeded experiments (``seeds``, default :func:`default_seeds`). With
    ``compute_ahead`` (default: on, off in quick mode, whose computes take less than a worker's
    start) and more than one worker, the same workers also compute the uncached results, each as
    soon as its models are trained, instead of this process computing them one after the other
    once all training is done.
    """
    check_workers(workers)
    check_seeds(seeds)
    names = list(registry.EXPERIMENTS if not names else names)
    for name in names:
        if name not in registry.EXPERIMENTS:
            load(name)  # raises KeyError naming the known experiments
    runs_dir = Path(runs_dir)
    with lock_folder(runs_dir, "runs folder"):  # a second report on the same --runs is refused, naming this pid
        return _run_locked(names, runs_dir, quick=quick, cache_dir=cache_dir, progress=progress, recompute=recompute,
                           zoo_settings=zoo_settings, command=command, log=log, workers=workers, seeds=seeds,
                           compute_ahead=not quick if compute_ahead is None else compute_ahead)


def _run_locked(names, runs_dir, *, quick, cache_dir, progress, recompute, zoo_settings, command, log, workers, seeds, compute_ahead) -> ExperimentsRun:
    zoo = TrackingZoo(runs_dir, zoo_settings or ZooSettings(quick=quick), cache_dir=cache_dir, progress=progress)
    seeds = default_seeds(quick) if seeds is None else seeds
    state = _State(zoo=zoo, results_dir=runs_dir / "results", quick=quick, recompute=recompute, log=log, seeds=seeds,
                   compute_ahead=compute_ahead)
    _train_ahead(state, names, workers)
    for i, name in enumerate(names, 1):
        _run_one(state, name, f"[{i}/{len(names)}] {name}")
    record = run_record(state, names, command=command)
    record["timings_s"] = dict(state.timings)
    trained = {z.label(p): t for z in _family(state) for p, t in z.timings.items()}
    return ExperimentsRun(sections=state.sections, errors=state.errors, cached=state.cached, timings=state.timings, trained=trained, record=record)


def _family(state: _State) -> list[Zoo]:
    """The zoos of every seed offset used so far, offset 0 first."""
    return state.zoo.seed_zoos()


def _cache_path(state: _State, module: ModuleType, cfg: Any, offset: int = 0) -> Path:
    return state.results_dir / f"{module.NAME}-{config_key(cfg)}-{state.zkey(offset)}.json"


def _config(module: ModuleType, quick: bool) -> Any:
    return module.Config.quick() if quick else module.Config()


def _train_ahead(state: _State, names: Sequence[str], workers: int | None) -> None:
    """Train the presets named by the configs of the experiments whose results are not cached, every seed of a seeded
    experiment in the same pool; remember the cached results. With ``state.compute_ahead``, the same workers
    then compute those results, each as soon as its models are trained (:func:`_compute_jobs`)."""
    needed: list[tuple[int, str]] = []
    uncached: list[tuple[str, int, Any]] = []  # (experiment, offset, config)
    for name in names:
        try:
            module = load(name)
            cfg = _config(module, state.quick)
            for offset in state.offsets(module):
                cfg_k = config_for_seed(cfg, offset)
                cached = None if state.recompute else read_cache(_cache_path(state, module, cfg_k, offset), source_hash(module))
                state.prefetched[(name, offset)] = cached
                if cached is None:
                    needed += [(offset, p) for p in presets_in(cfg_k) if (offset, p) not in needed]
                    uncached.append((name, offset, cfg_k))
        except Exception:  # noqa: BLE001 - a module that fails to load is reported by the experiment loop
            continue
    then = _compute_jobs(state, uncached, workers) if state.compute_ahead else []
    if not needed and not then:
        return
    t0 = time.perf_counter()
    try:
        trained = state.zoo.ensure_many(needed, workers=workers, log=state.log, then=then)
    except Exception as error:  # noqa: BLE001 - each experiment trains what it needs in-process and reports the error in its section
        state.log(f"training the models ahead failed ({type(error).__name__}: {error}); each experiment trains what it needs itself")
        trained = {}
    if trained or then:
        state.timings["train models" if not then else "train models and compute"] = time.perf_counter() - t0
        state.timings.update({f"train {label}": seconds for label, seconds in trained.items()})


def _compute_jobs(state: _State, uncached: Sequence[tuple[str, int, Any]], workers: int | None) -> list[Job]:
    """One worker job per uncached (experiment, seed offset), after the models its config names.

    Only with more than one worker (one process gains nothing over computing in the experiment
    loop). A job that fails leaves no cache file, so the experiment loop computes that result
    in-process and reports the error in its section if it fails again.
    """
    if (workers or default_workers(len(uncached))) < 2:
        return []
    jobs = []
    for name, offset, cfg in uncached:
        zoo = state.zoo_for(offset)
        module = load(name)
        path = _cache_path(state, module, cfg, offset)
        label = f"{name}{f' seed +{offset}' if offset else ''}"
        jobs.append(Job(
            label=f"compute {label}", fn=_compute_in_worker, cost_s=float(getattr(module, "COMPUTE_S", DEFAULT_COMPUTE_S)),
            args=(str(zoo.root), dataclasses.asdict(zoo.settings), None if zoo.cache_dir is None else str(zoo.cache_dir), name, state.quick,
                  offset, str(path), state.zkey(offset)),
            after=tuple(zoo.label(p) for p in presets_in(cfg)), on_done=_ahead_done(state, name, offset, label),
        ))
    return jobs


def _ahead_done(state: _State, name: str, offset: int, label: str) -> Callable[[Any, BaseException | None], None]:
    def done(info: Any, error: BaseException | None) -> None:
        if error is None:
            state.ahead[(name, offset)] = info
            state.log(f"computed {label} in a worker in {info['elapsed']:.1f} s")
        else:
            state.log(f"computing {label} in a worker failed ({type(error).__name__}: {error}); the experiment loop computes it again")

    return done


def _compute_in_worker(root: str, settings: dict, cache_dir: str | None, name: str, quick: bool, offset: int, path: str, zkey: str) -> dict:
    """Worker side of :func:`_compute_jobs`: rebuild the zoo and config, compute and cache; the info without the data."""
    zoo = TrackingZoo(root, ZooSettings(**settings), cache_dir=cache_dir, progress=False)
    module = load(name)
    cfg = config_for_seed(_config(module, quick), offset)
    info = compute_and_cache(module, name, cfg, zoo, Path(path), zkey, offset)
    del info["data"]  # the experiment loop reads it from the cache file, as every cached result
    return info


def _run_one(state: _State, name: str, stage: str) -> None:
    """Compute (or read) one experiment's result(s) and build its section; a failure becomes an error section."""
    try:
        module = load(name)
    except ExperimentMissing as error:
        state.log(f"{stage}: missing ({error})")
        state.errors[name] = str(error)
        state.sections.append(error_section(name, name.replace("_", " ")))
        return
    except Exception:  # noqa: BLE001 - a broken module is that section's error, not the report's
        state.errors[name] = traceback.format_exc()
        state.log(f"{stage}: import failed:\n{state.errors[name]}")
        state.sections.append(error_section(name, name.replace("_", " ")))
        return
    try:
        cfg = _config(module, state.quick)
        state.configs[name] = dataclasses.asdict(cfg)
        result = _result(state, module, name, cfg, stage)
        t0 = time.perf_counter()
        section = build_section(module, result, cfg, state.zoo)
        state.timings[f"{name}: build"] = time.perf_counter() - t0
        if is_seeded(module):
            _aggregate_seeds(state, module, name, section, cfg, stage)
        state.log(f"{stage}: built {len(section.figures)} figures, {len(section.tables)} tables, {len(section.claims)} claims")
        state.sections.append(section)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - reported in the section and by the exit status
        state.errors[name] = traceback.format_exc()
        state.log(f"{stage}: FAILED\n{state.errors[name]}")
        state.sections.append(error_section(name, getattr(module, "TITLE", name)))


def _aggregate_seeds(state: _State, module: ModuleType, name: str, section: Section, cfg: Any, stage: str) -> None:
    """Replace seed 0's claims of ``section`` by the aggregate over every seed; a later seed that fails counts as untested."""
    per_seed: list[list[Claim]] = [list(section.claims)]
    failed: list[str] = []
    for offset in state.offsets(module)[1:]:
        label = f"{name} seed +{offset}"
        try:
            cfg_k = config_for_seed(cfg, offset)
            result = _result(state, module, name, cfg_k, f"{stage} (seed +{offset})", offset)
            per_seed.append(_claims_of(module, result, cfg_k, state.zoo_for(offset)))
        except KeyboardInterrupt:
            raise
        except Exception:  # noqa: BLE001 - that seed's claims count as untested; the error is reported
            state.errors[label] = traceback.format_exc()
            state.log(f"{stage}: seed +{offset} FAILED\n{state.errors[label]}")
            per_seed.append([])
            failed.append(f"+{offset}")
    state.seeds_run[name] = state.offsets(module)
    section.claims = aggregate_claims(per_seed)
    section.notes.append(seeds_note(len(per_seed), failed))


def seeds_note(n_seeds: int, failed: Sequence[str] = ()) -> str:
    """The section note of a seeded experiment."""
    if n_seeds == 1:
        text = "Claims computed on one seed (circuits report --seeds N tests them on N seeds of the models and probes)."
    else:
        text = (f"Claims tested on {n_seeds} seeds (model and training seeds, and the probes' random tokens, shifted by 0 .. {n_seeds - 1}); "
                "a claim holds only if it holds on every seed that could test it. Figures, tables and 'measured' show seed 0.")
    return text + (f" Seed(s) {', '.join(failed)} failed (their claims count as untested; see the errors)." if failed else "")


def _claims_of(module: ModuleType, result: Any, cfg: Any, zoo: Zoo) -> list[Claim]:
    return list(module.claims(result)) if hasattr(module, "Result") else list(build_section(module, result, cfg, zoo).claims)


def _result(state: _State, module: ModuleType, name: str, cfg: Any, stage: str, offset: int = 0) -> Any:
    """The experiment's result for seed offset ``offset``: from the cache, or computed now (and cached atomically)."""
    path = _cache_path(state, module, cfg, offset)
    code = source_hash(module)
    key = (name, offset)
    data = None if state.recompute or key in state.ahead else state.prefetched[key] if key in state.prefetched else read_cache(path, code)
    hit = data is not None
    state.cached[name] = hit if offset == 0 else state.cached.get(name, True) and hit  # cached: every seed's result was
    zoo = state.zoo_for(offset)
    suffix = f" seed +{offset}" if offset else ""
    if data is not None:
        _note_models(state, name, offset, read_models(path))
        state.timings[f"{name}{suffix}: compute"] = 0.0
        state.log(f"{stage}: results from cache {path}")
        return result_from_json(module, data)
    ahead = state.ahead.pop(key, None)
    if ahead is not None and (data := read_cache(path, code)) is not None:  # computed and cached by a worker of the training stage
        _record_compute(state, name, offset, ahead, in_worker=True)
        state.log(f"{stage}: computed in a worker in {ahead['elapsed']:.1f} s (training {ahead['training']:.1f} s); cached {path}")
        return result_from_json(module, data)
    state.log(f"{stage}: computing (models are trained on first use)")
    info = compute_and_cache(module, name, cfg, zoo, path, state.zkey(offset), offset)
    _record_compute(state, name, offset, info)
    state.log(f"{stage}: computed in {info['elapsed']:.1f} s (training {info['training']:.1f} s); cached {path}")
    return result_from_json(module, info["data"])  # what is shown is exactly what is cached


def compute_and_cache(module: ModuleType, name: str, cfg: Any, zoo: "TrackingZoo", path: Path, zkey: str, offset: int) -> dict:
    """Compute one experiment's result with ``zoo`` and write it to the result cache ``path`` (atomically).

    Returns ``data`` (the result's JSON, exactly what was cached), ``elapsed`` (seconds, training
    included), ``training`` (seconds of it spent training models), ``trained`` (``{preset:
    seconds}`` trained now) and ``models`` (the presets it read).
    """
    trained_before = dict(zoo.timings)
    zoo.recent.clear()
    t0 = time.perf_counter()
    result = module.compute(cfg, zoo)
    elapsed = time.perf_counter() - t0
    trained = {p: s - trained_before.get(p, 0.0) for p, s in zoo.timings.items() if s > trained_before.get(p, 0.0)}
    models = list(zoo.recent)
    data = result_to_json(module, result)
    json.dumps(data, allow_nan=True)  # JSON-able, or a TypeError naming the culprit
    atomic_write_json(path, {"experiment": name, "code": source_hash(module), "config": dataclasses.asdict(cfg), "seed_offset": offset,
                             "zoo_key": zkey, "models": models, "results": data})
    return {"data": data, "elapsed": elapsed, "training": sum(trained.values()), "trained": trained, "models": models}


def _record_compute(state: _State, name: str, offset: int, info: dict, *, in_worker: bool = False) -> None:
    """Timings, trained models and models read of one computed result (in this process, or in a worker: ``in_worker``)."""
    zoo = state.zoo_for(offset)
    suffix = f" seed +{offset}" if offset else ""
    state.timings[f"{name}{suffix}: compute"] = info["elapsed"] - info["training"]
    for preset, seconds in info["trained"].items():
        if in_worker:  # this process's zoo did not time it (an in-process compute's zoo already did)
            zoo.timings[preset] = zoo.timings.get(preset, 0.0) + seconds
        state.timings[f"train {zoo.label(preset)}"] = seconds
    _note_models(state, name, offset, info["models"])


def _note_models(state: _State, name: str, offset: int, presets: Sequence[str]) -> None:
    used = state.models_used.setdefault(name, [])
    used += [(offset, p) for p in presets if (offset, p) not in used]


def read_cache(path: Path, code: str) -> Any:
    """The cached result JSON of an experiment, or ``None`` when absent, unreadable or computed by other code."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("code") != code or "results" not in data:
        return None
    return data["results"]


def read_models(path: Path) -> list[str]:
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("models", []))
    except (OSError, ValueError):
        return []
