"""``circuits report``: run the experiments (:mod:`circuits.runner`), then write the report (:func:`write_report`).

Also the command line of the report and of ``experiments/<name>.py`` (:func:`experiment_main`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import circuits.experiments as registry
from circuits.experiments import load
from circuits.experiments.base import Section
from circuits.report.write import write_report
from circuits.runner import DEFAULT_SEEDS, QUICK_SEEDS, check_seeds, check_workers, log_stderr, run_experiments
from circuits.training.profiles import PROFILES
from circuits.training.zoo import ZooSettings

__all__ = ["ReportRun", "make_report", "add_arguments", "add_common_arguments", "run", "run_from_args", "experiment_main"]


@dataclass
class ReportRun:
    """What :func:`make_report` did: the report file, per-experiment status, timings."""

    html: Path
    sections: list[Section]
    errors: dict[str, str]  # experiment name -> traceback or reason
    cached: dict[str, bool]  # experiment name -> results came from the cache
    timings: dict[str, float]
    trained: dict[str, float]  # model label (preset, "preset seed +k") -> training seconds
    png: Any = None
    record: dict = field(default_factory=dict)  # the run record shown at the end of the report

    @property
    def ok(self) -> bool:
        return not self.errors


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
    log: Callable[[str], None] = log_stderr,
    workers: int | None = None,
    seeds: int | None = None,
    compute_ahead: bool | None = None,
) -> ReportRun:
    """Run experiments ``names`` (default: all of :data:`circuits.experiments.EXPERIMENTS`, in that order) and write ``out_dir/report.html``.

    See :func:`circuits.runner.run_experiments` for the stages, the result cache, parallel training
    and ``seeds`` (the seeds of the seeded experiments' claims; default 3, 1 in quick mode), and
    ``compute_ahead`` (experiments computed by the training workers; default: on, off in quick mode).
    """
    check_workers(workers)
    check_seeds(seeds)
    start = time.perf_counter()
    ran = run_experiments(
        names, quick=quick, runs_dir=runs_dir, cache_dir=cache_dir, progress=progress, recompute=recompute,
        zoo_settings=zoo_settings, command=command, log=log, workers=workers, seeds=seeds, compute_ahead=compute_ahead,
    )
    timings = ran.record["timings_s"]
    written = write_report(ran.sections, out_dir, ran.record, errors=ran.errors, png=png, log=log)
    timings.update(written.timings)
    timings["total"] = time.perf_counter() - start
    failed = f"; {len(ran.errors)} experiment(s) failed: {', '.join(ran.errors)}" if ran.errors else ""
    log(f"wrote {written.html} in {timings['total']:.1f} s{failed}")
    return ReportRun(html=written.html, sections=ran.sections, errors=ran.errors, cached=ran.cached, timings=timings, trained=ran.trained, png=written.png,
                     record=ran.record)


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
    parser.add_argument(
        "--compute-here", action="store_true",
        help="compute the experiments in this process after all training (default: the training workers compute each as soon as its models are trained)",
    )
    parser.add_argument(
        "--profile", choices=list(PROFILES), default="default",
        help="default: the presets as defined; full: every preset on the corpus alone at several times the tokens (hours on CPU: for a GPU)",
    )
    parser.add_argument(
        "--seeds", type=_seed_count,
        help=f"seeds the seeded sections' claims are tested on (models and probes; default {DEFAULT_SEEDS}, {QUICK_SEEDS} with --quick)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these experiments ({', '.join(registry.EXPERIMENTS)})")


def run_from_args(args: argparse.Namespace, only: Sequence[str] | None, *, prog: str = "circuits report") -> int:
    for name in only or ():
        if name not in registry.EXPERIMENTS:
            load(name)  # KeyError with the known names -> exit status 2
    if args.quick and args.profile != "default":
        print(f"{prog}: error: --profile {args.profile} cannot be combined with --quick (quick shrinks the presets for a smoke test); drop one of them", file=sys.stderr)
        return 2
    settings = ZooSettings(quick=args.quick, profile=args.profile)
    result = make_report(
        only, zoo_settings=settings, quick=args.quick, out_dir=args.out, runs_dir=args.runs, cache_dir=args.cache_dir, png=not args.no_png,
        progress=not args.no_progress, recompute=args.recompute, command=prog + _flags(args, only), workers=args.workers,
        seeds=args.seeds, compute_ahead=False if getattr(args, "compute_here", False) else None,
    )
    print(f"report: {result.html}")
    return 0 if result.ok else 1


def _positive_int(text: str, flag: str = "--workers") -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: give a positive integer, e.g. {flag} 2")
    return value


def _seed_count(text: str) -> int:
    return _positive_int(text, "--seeds")


def _flags(args: argparse.Namespace, only: Sequence[str] | None) -> str:
    flags = [f for f, on in (("--quick", args.quick), ("--no-png", args.no_png), ("--recompute", args.recompute),
                             ("--compute-here", getattr(args, "compute_here", False))) if on]
    flags += [f"--seeds {args.seeds}"] if getattr(args, "seeds", None) else []
    flags += [f"--profile {args.profile}"] if getattr(args, "profile", "default") != "default" else []
    flags += [f"--out {args.out}", f"--runs {args.runs}"] + ([f"--only {' '.join(only)}"] if getattr(args, "only", None) else [])
    return " " + " ".join(flags)


def run(args: argparse.Namespace) -> int:
    return run_from_args(args, args.only)


def experiment_main(name: str, argv: Sequence[str] | None = None) -> int:
    """Run experiment ``name`` alone and write a one-section report (``experiments/<name>.py`` calls this).

    Flags: ``--quick`` (tiny models and settings), ``--out DIR`` (default ``figures/<name>``),
    ``--runs DIR`` (trained models and the result cache, default ``runs``), ``--no-png``,
    ``--cache-dir DIR``, ``--seeds N``, ``--profile NAME``. Returns the exit status (0, or 1 when the experiment failed).
    """
    load(name)  # KeyError naming the known experiments
    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=f"Run the {name} experiment and write its report section.")
    add_common_arguments(parser, default_out=f"figures/{name}")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_from_args(args, only=[name], prog=f"python experiments/{name}.py")
