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

This module sits between the experiments (below) and the report (above): it never renders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
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
from circuits.experiments.base import Section, build_section, config_key, digest, result_from_json, result_to_json
from circuits.training.checkpoint import git_commit
from circuits.training.parallel import presets_in
from circuits.training.lock import lock_folder
from circuits.training.presets import PRESETS
from circuits.training.zoo import CODE_VERSION, Zoo, ZooSettings

__all__ = ["ExperimentsRun", "run_experiments", "zoo_key", "check_workers"]


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
        self.used: list[str] = []

    def ensure(self, name: str) -> Path:
        if name not in self.used:
            self.used.append(name)
        return super().ensure(name)


def zoo_key(zoo: Zoo) -> str:
    """Hash of what the zoo's models depend on: settings, corpus, training code version, every preset's run folder name."""
    settings = dataclasses.asdict(zoo.settings)
    return digest({"settings": settings, "corpus": zoo.corpus.fingerprint, "code": CODE_VERSION, "runs": sorted(zoo.run_dir(n).name for n in PRESETS)})


def check_workers(workers: Any) -> None:
    """Refuse a worker count that is not a positive int (``None`` = one per CPU core)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive integer (or None: one per CPU core)")


def source_hash(module: ModuleType) -> str:
    """12 hex digits of SHA-256 over a module's source file ("unknown" when it has none)."""
    try:
        return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:12]
    except (OSError, TypeError):
        return "unknown"


def log_stderr(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def error_section(name: str, title: str) -> Section:
    return Section(key=name, title=title, intro=f"The <code>{name}</code> experiment did not produce results; the error is below (the other sections are unaffected).")


@dataclass
class _State:
    """What the experiment loop accumulates."""

    zoo: TrackingZoo
    zkey: str
    results_dir: Path
    quick: bool
    recompute: bool
    log: Callable[[str], None]
    prefetched: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    models_used: dict[str, list[str]] = field(default_factory=dict)


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
) -> ExperimentsRun:
    """Run experiments ``names`` (default: all of :data:`circuits.experiments.EXPERIMENTS`, in that order) and return their sections.

    Before the experiments run, the zoo models that the uncached experiments name in their
    configs are trained, ``workers`` processes at a time (default: one per CPU core).
    """
    check_workers(workers)
    names = list(registry.EXPERIMENTS if not names else names)
    for name in names:
        if name not in registry.EXPERIMENTS:
            load(name)  # raises KeyError naming the known experiments
    runs_dir = Path(runs_dir)
    with lock_folder(runs_dir, "runs folder"):  # a second report on the same --runs is refused, naming this pid
        return _run_locked(names, runs_dir, quick=quick, cache_dir=cache_dir, progress=progress, recompute=recompute,
                           zoo_settings=zoo_settings, command=command, log=log, workers=workers)


def _run_locked(names, runs_dir, *, quick, cache_dir, progress, recompute, zoo_settings, command, log, workers) -> ExperimentsRun:
    zoo = TrackingZoo(runs_dir, zoo_settings or ZooSettings(quick=quick), cache_dir=cache_dir, progress=progress)
    state = _State(zoo=zoo, zkey=zoo_key(zoo), results_dir=runs_dir / "results", quick=quick, recompute=recompute, log=log)
    _train_ahead(state, names, workers)
    for i, name in enumerate(names, 1):
        _run_one(state, name, f"[{i}/{len(names)}] {name}")
    record = run_record(state, names, command=command)
    record["timings_s"] = dict(state.timings)
    return ExperimentsRun(sections=state.sections, errors=state.errors, cached=state.cached, timings=state.timings, trained=dict(zoo.timings), record=record)


def _cache_path(state: _State, module: ModuleType, cfg: Any) -> Path:
    return state.results_dir / f"{module.NAME}-{config_key(cfg)}-{state.zkey}.json"


def _config(module: ModuleType, quick: bool) -> Any:
    return module.Config.quick() if quick else module.Config()


def _train_ahead(state: _State, names: Sequence[str], workers: int | None) -> None:
    """Train the presets named by the configs of the experiments whose results are not cached; remember the cached results."""
    needed: list[str] = []
    for name in names:
        try:
            module = load(name)
            cfg = _config(module, state.quick)
            cached = None if state.recompute else read_cache(_cache_path(state, module, cfg), source_hash(module))
        except Exception:  # noqa: BLE001 - a module that fails to load is reported by the experiment loop
            continue
        state.prefetched[name] = cached
        if cached is None:
            needed += [p for p in presets_in(cfg) if p not in needed]
    if not needed:
        return
    t0 = time.perf_counter()
    try:
        trained = state.zoo.ensure_many(needed, workers=workers, log=state.log)
    except Exception as error:  # noqa: BLE001 - each experiment trains what it needs in-process and reports the error in its section
        state.log(f"training the models ahead failed ({type(error).__name__}: {error}); each experiment trains what it needs itself")
        trained = {}
    if trained:
        state.timings["train models"] = time.perf_counter() - t0
        state.timings.update({f"train {preset}": seconds for preset, seconds in trained.items()})


def _run_one(state: _State, name: str, stage: str) -> None:
    """Compute (or read) one experiment's result and build its section; a failure becomes an error section."""
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
        state.log(f"{stage}: built {len(section.figures)} figures, {len(section.tables)} tables, {len(section.claims)} claims")
        state.sections.append(section)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001 - reported in the section and by the exit status
        state.errors[name] = traceback.format_exc()
        state.log(f"{stage}: FAILED\n{state.errors[name]}")
        state.sections.append(error_section(name, getattr(module, "TITLE", name)))


def _result(state: _State, module: ModuleType, name: str, cfg: Any, stage: str) -> Any:
    """The experiment's result: from the cache, or computed now (and cached atomically)."""
    path = _cache_path(state, module, cfg)
    code = source_hash(module)
    data = None if state.recompute else state.prefetched[name] if name in state.prefetched else read_cache(path, code)
    state.cached[name] = data is not None
    if data is not None:
        state.models_used[name] = read_models(path)
        state.timings[f"{name}: compute"] = 0.0
        state.log(f"{stage}: results from cache {path}")
        return result_from_json(module, data)
    zoo = state.zoo
    state.log(f"{stage}: computing (models are trained on first use)")
    trained_before, used_before = dict(zoo.timings), len(zoo.used)
    t0 = time.perf_counter()
    result = module.compute(cfg, zoo)
    elapsed = time.perf_counter() - t0
    training = sum(zoo.timings.values()) - sum(trained_before.values())
    state.timings[f"{name}: compute"] = elapsed - training
    for preset, seconds in zoo.timings.items():
        if seconds > trained_before.get(preset, 0.0):
            state.timings[f"train {preset}"] = seconds - trained_before.get(preset, 0.0)
    state.models_used[name] = zoo.used[used_before:] or list(zoo.used)
    data = result_to_json(module, result)
    json.dumps(data, allow_nan=True)  # JSON-able, or a TypeError naming the culprit
    atomic_write_json(path, {"experiment": name, "code": code, "config": state.configs[name], "zoo_key": state.zkey, "models": state.models_used[name], "results": data})
    state.log(f"{stage}: computed in {elapsed:.1f} s (training {training:.1f} s); cached {path}")
    return result_from_json(module, data)  # what is shown is exactly what is cached


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
    """The seeds and sizes of one zoo model, for the run record."""
    model_cfg, train_cfg = zoo.configs(preset)
    return {
        "run": str(zoo.run_dir(preset)),
        "model_seed": model_cfg.seed,
        "train_seed": train_cfg.seed,
        "steps": train_cfg.steps,
        "batch_size": train_cfg.batch_size,
        "d_model": model_cfg.d_model,
        "n_layers": model_cfg.n_layers,
        "n_heads": model_cfg.n_heads,
        "d_vocab": model_cfg.d_vocab,
        "n_ctx": model_cfg.n_ctx,
        "positional": model_cfg.positional,
    }


def run_record(state: _State, names: Sequence[str], *, command: str) -> dict:
    """The run record shown at the end of the report: what ran, on what, with which models and settings."""
    commit, dirty = git_commit()
    zoo = state.zoo
    presets = sorted({p for used in state.models_used.values() for p in used} | set(zoo.used))
    models = {}
    for preset in presets:
        try:
            models[preset] = model_record(zoo, preset)
        except Exception as error:  # noqa: BLE001 - the record lists what it can
            models[preset] = {"error": str(error)}
    status = {n: ("failed" if n in state.errors else "cached results" if state.cached.get(n) else "computed") for n in names}
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
        "quick": state.quick,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "corpus_fingerprint": zoo.corpus.describe().get("fingerprint"),
        "zoo_key": state.zkey,
        "experiments": status,
        "packages": versions(),
        "zoo": zoo.describe(),
        "models (seeds and sizes)": models,
        "experiment configs": state.configs,
    }
