"""``circuits report``: run the experiments (cached), build their sections, write the report.

Stages, each timed into the run record: for every experiment, *compute* (training the zoo
models it asks for on first use; their training time is recorded separately), then *build*
(figures from the results); then the PNG export and the HTML. ``compute``'s output is cached as
``<runs>/results/<NAME>-<config key>-<zoo key>.json`` (written atomically, with a hash of the
experiment's source so that a code change recomputes), so an interrupted report resumes with
what finished and a rerun only rebuilds figures. A failing experiment becomes an error section
with its traceback; the report is still written and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.atomic import atomic_write_json
import circuits.experiments as registry
from circuits.experiments import ExperimentMissing, load
from circuits.experiments.common import CODE_VERSION, Section, Zoo, ZooSettings, _digest, config_key

__all__ = ["ReportRun", "make_report", "add_arguments", "add_common_arguments", "run", "run_from_args", "zoo_key"]


@dataclass
class ReportRun:
    """What :func:`make_report` did: the report file, per-experiment status, timings."""

    html: Path
    sections: list[Section]
    errors: dict[str, str]  # experiment name -> traceback or reason
    cached: dict[str, bool]  # experiment name -> results came from the cache
    timings: dict[str, float]
    trained: dict[str, float]  # preset -> training seconds in this process
    png: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors


class _TrackingZoo(Zoo):
    """A :class:`Zoo` that remembers which presets were asked for (for the run record)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: list[str] = []

    def ensure(self, name: str) -> Path:
        if name not in self.used:
            self.used.append(name)
        return super().ensure(name)


def zoo_key(zoo: Zoo) -> str:
    """Hash of what the zoo's models depend on: settings, corpus, training code version, every preset's run folder name."""
    from circuits.presets import PRESETS

    settings = dataclasses.asdict(zoo.settings)
    return _digest({"settings": settings, "corpus": zoo.corpus.fingerprint, "code": CODE_VERSION, "runs": sorted(zoo.run_dir(n).name for n in PRESETS)})


def _source_hash(module) -> str:
    try:
        return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:12]
    except (OSError, TypeError):
        return "unknown"


def _log(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def _error_section(name: str, title: str) -> Section:
    return Section(key=name, title=title, intro=f"The <code>{name}</code> experiment did not produce results; the error is below (the other sections are unaffected).")


def make_report(
    names: Sequence[str] | None = None,
    *,
    quick: bool = False,
    out_dir: str | Path = "figures",
    runs_dir: str | Path = "runs",
    cache_dir: str | Path | None = None,
    png: bool = True,
    progress: bool = True,
    recompute: bool = False,
    zoo_settings: ZooSettings | None = None,
    command: str = "circuits report",
    log: Callable[[str], None] = _log,
    workers: int | None = None,
) -> ReportRun:
    """Run experiments ``names`` (default: all of :data:`circuits.experiments.EXPERIMENTS`, in that order) and write ``out_dir/report.html``.

    Before the experiments run, the zoo models that the uncached experiments name in their
    configs are trained, ``workers`` processes at a time (default: one per CPU core; see
    :meth:`~circuits.experiments.common.Zoo.ensure_many`).
    """
    from circuits.report.write import write_report

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive integer (or None: one per CPU core)")
    names = list(registry.EXPERIMENTS if not names else names)
    for name in names:
        if name not in registry.EXPERIMENTS:
            load(name)  # raises KeyError naming the known experiments
    start = time.perf_counter()
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    settings = zoo_settings or ZooSettings(quick=quick)
    zoo = _TrackingZoo(runs_dir, settings, cache_dir=cache_dir, progress=progress)
    zkey = zoo_key(zoo)
    results_dir = runs_dir / "results"
    timings: dict[str, float] = {}
    sections: list[Section] = []
    errors: dict[str, str] = {}
    cached: dict[str, bool] = {}
    configs: dict[str, Any] = {}
    models_used: dict[str, list[str]] = {}
    needed, prefetched = _presets_to_train(names, quick=quick, results_dir=results_dir, zkey=zkey, recompute=recompute)
    if needed:
        t0 = time.perf_counter()
        try:
            trained = zoo.ensure_many(needed, workers=workers, log=log)
        except Exception as error:  # noqa: BLE001 - each experiment trains what it needs in-process and reports the error in its section
            log(f"training the models ahead failed ({type(error).__name__}: {error}); each experiment trains what it needs itself")
            trained = {}
        if trained:
            timings["train models"] = time.perf_counter() - t0
            timings.update({f"train {preset}": seconds for preset, seconds in trained.items()})
    for i, name in enumerate(names, 1):
        stage = f"[{i}/{len(names)}] {name}"
        try:
            module = load(name)
        except ExperimentMissing as error:
            log(f"{stage}: missing ({error})")
            errors[name] = str(error)
            sections.append(_error_section(name, name.replace("_", " ")))
            continue
        except Exception:  # noqa: BLE001 - a broken module is that section's error, not the report's
            errors[name] = traceback.format_exc()
            log(f"{stage}: import failed:\n{errors[name]}")
            sections.append(_error_section(name, name.replace("_", " ")))
            continue
        title = getattr(module, "TITLE", name)
        try:
            cfg = module.Config.quick() if quick else module.Config()
            configs[name] = dataclasses.asdict(cfg)
            path = results_dir / f"{module.NAME}-{config_key(cfg)}-{zkey}.json"
            code = _source_hash(module)
            results = None if recompute else prefetched[name] if name in prefetched else _read_cache(path, code)
            cached[name] = results is not None
            if results is None:
                log(f"{stage}: computing (models are trained on first use)")
                trained_before = dict(zoo.timings)
                used_before = len(zoo.used)
                t0 = time.perf_counter()
                results = module.compute(cfg, zoo)
                elapsed = time.perf_counter() - t0
                training = sum(zoo.timings.values()) - sum(trained_before.values())
                timings[f"{name}: compute"] = elapsed - training
                for preset, seconds in zoo.timings.items():
                    if seconds > trained_before.get(preset, 0.0):
                        timings[f"train {preset}"] = seconds - trained_before.get(preset, 0.0)
                models_used[name] = zoo.used[used_before:] or list(zoo.used)
                json.dumps(results, allow_nan=True)  # JSON-able, or a TypeError naming the culprit
                atomic_write_json(path, {"experiment": name, "code": code, "config": configs[name], "zoo_key": zkey, "models": models_used[name], "results": results})
                log(f"{stage}: computed in {elapsed:.1f} s (training {training:.1f} s); cached {path}")
            else:
                models_used[name] = _read_models(path)
                log(f"{stage}: results from cache {path}")
            t0 = time.perf_counter()
            section = module.build(results, cfg, zoo)
            timings[f"{name}: build"] = time.perf_counter() - t0
            if cached[name]:
                timings[f"{name}: compute"] = 0.0
            log(f"{stage}: built {len(section.figures)} figures, {len(section.tables)} tables, {len(section.claims)} claims")
            sections.append(section)
        except KeyboardInterrupt:
            raise
        except Exception:  # noqa: BLE001 - reported in the section and by the exit status
            errors[name] = traceback.format_exc()
            log(f"{stage}: FAILED\n{errors[name]}")
            sections.append(_error_section(name, title))

    record = _run_record(zoo, names, configs, models_used, cached, errors, quick=quick, command=command, zkey=zkey)
    timings_all = {**timings}
    record["timings_s"] = timings_all
    written = write_report(sections, out_dir, record, errors=errors, png=png, log=log)
    timings_all.update(written.timings)
    timings_all["total"] = time.perf_counter() - start
    log(f"wrote {written.html} in {timings_all['total']:.1f} s" + (f"; {len(errors)} experiment(s) failed: {', '.join(errors)}" if errors else ""))
    return ReportRun(html=written.html, sections=sections, errors=errors, cached=cached, timings=timings_all, trained=dict(zoo.timings), png=written.png)


def _presets_to_train(names: Sequence[str], *, quick: bool, results_dir: Path, zkey: str, recompute: bool) -> tuple[list[str], dict[str, dict | None]]:
    """Presets named by the configs of the experiments whose results are not cached, and each loadable experiment's cached results (``None``: none).

    A module that fails to load is skipped here: the experiment loop reports it.
    """
    from circuits.experiments._parallel import presets_in

    needed: list[str] = []
    cached: dict[str, dict | None] = {}
    for name in names:
        try:
            module = load(name)
            cfg = module.Config.quick() if quick else module.Config()
            path = results_dir / f"{module.NAME}-{config_key(cfg)}-{zkey}.json"
            cached[name] = None if recompute else _read_cache(path, _source_hash(module))
            if cached[name] is None:
                needed += [p for p in presets_in(cfg) if p not in needed]
        except Exception:  # noqa: BLE001 - reported by the experiment loop
            continue
    return needed, cached


def _read_cache(path: Path, code: str) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("code") != code or "results" not in data:
        return None
    return data["results"]


def _read_models(path: Path) -> list[str]:
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("models", []))
    except (OSError, ValueError):
        return []


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in ("circuits", "torch", "transformer-lens", "numpy", "plotly", "kaleido", "tokenizers", "safetensors"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def _run_record(zoo: Zoo, names, configs, models_used, cached, errors, *, quick: bool, command: str, zkey: str) -> dict:
    import platform

    from circuits.checkpoint import _git_commit

    commit, dirty = _git_commit()
    presets = sorted({p for used in models_used.values() for p in used} | set(getattr(zoo, "used", [])))
    models = {}
    for preset in presets:
        try:
            model_cfg, train_cfg = zoo.configs(preset)
            models[preset] = {
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
        except Exception as error:  # noqa: BLE001 - the record lists what it can
            models[preset] = {"error": str(error)}
    corpus = zoo.corpus.describe()
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": command,
        "quick": quick,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "corpus_fingerprint": corpus.get("fingerprint"),
        "zoo_key": zkey,
        "experiments": {n: ("failed" if n in errors else "cached results" if cached.get(n) else "computed") for n in names},
        "packages": _versions(),
        "zoo": zoo.describe(),
        "models (seeds and sizes)": models,
        "experiment configs": configs,
    }


# ---- command line ---------------------------------------------------------------------------
def add_common_arguments(parser: argparse.ArgumentParser, *, default_out: str = "figures") -> None:
    parser.add_argument("--quick", action="store_true", help="tiny models and settings (a smoke test of the whole pipeline, about a minute)")
    parser.add_argument("--out", default=default_out, help=f"folder for report.html and png/ (default {default_out})")
    parser.add_argument("--runs", default="runs", help="trained models and the result cache results/ (default runs)")
    parser.add_argument("--cache-dir", help="tokenizer and token cache (default: $CIRCUITS_CACHE or ~/.cache/circuits)")
    parser.add_argument("--no-png", action="store_true", help="skip the static PNG export")
    parser.add_argument("--recompute", action="store_true", help="ignore cached experiment results (trained models are still reused)")
    parser.add_argument("--no-progress", action="store_true", help="no training progress bars")
    parser.add_argument("--workers", type=_positive_int, help="models trained at once, one process each (default: one per CPU core; 1 on CUDA)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these experiments ({', '.join(registry.EXPERIMENTS)})")


def run_from_args(args: argparse.Namespace, only: Sequence[str] | None, *, prog: str = "circuits report") -> int:
    for name in only or ():
        if name not in registry.EXPERIMENTS:
            load(name)  # KeyError with the known names -> exit status 2
    result = make_report(
        only, quick=args.quick, out_dir=args.out, runs_dir=args.runs, cache_dir=args.cache_dir, png=not args.no_png,
        progress=not args.no_progress, recompute=args.recompute, command=prog + _flags(args, only), workers=args.workers,
    )
    print(f"report: {result.html}")
    return 0 if result.ok else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--workers {text!r}: give a positive integer, e.g. --workers 2")
    return value


def _flags(args: argparse.Namespace, only: Sequence[str] | None) -> str:
    flags = [f for f, on in (("--quick", args.quick), ("--no-png", args.no_png), ("--recompute", args.recompute)) if on]
    flags += [f"--out {args.out}", f"--runs {args.runs}"] + ([f"--only {' '.join(only)}"] if getattr(args, "only", None) else [])
    return " " + " ".join(flags)


def run(args: argparse.Namespace) -> int:
    return run_from_args(args, args.only)
