"""Train several zoo models at once, one process each (internal; :meth:`Zoo.ensure_many` calls this).

On a CPU the toy models are too small for PyTorch's intra-op threads to pay off: on 2 cores one
2-thread training of the attention-only 2L preset runs at about 66k tokens/s, while two 1-thread
trainings side by side run at about 47k tokens/s each (94k together). So the report trains the
models it needs in ``workers`` spawned processes with ``cpu_count // workers`` threads each,
longest first, and shows one progress bar over all their steps (read from each run's
``metrics.jsonl``). Every run is still an ordinary, resumable zoo run: an interrupted report
resumes each model from its last checkpoint, and a model whose worker failed is trained again
in-process by the experiment that needs it (which then reports the error in its section).

Workers die with their parent: each arms a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG,
SIGKILL)``) and runs a watchdog thread that exits when its parent process is gone (any POSIX
system), so a ``kill -9`` of the report leaves no worker training or idling behind. When the
parent fails (an exception, Ctrl-C) it kills its workers before re-raising.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from circuits.training.presets import PRESETS

__all__ = ["presets_in", "default_workers", "train_parallel", "run_jobs", "Job", "worker_pool", "die_with_parent"]

#: ``prctl`` option: the signal this process gets when its parent exits (``<linux/prctl.h>``).
PR_SET_PDEATHSIG = 1
#: Seconds between two looks of a worker's watchdog at its parent.
WATCHDOG_PERIOD_S = 0.5


def presets_in(cfg: Any) -> list[str]:
    """Preset names an experiment config refers to: its ``str`` fields, and ``str`` items of its tuple/list fields, that name a preset (field order, no repeats)."""
    found: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, str) and item in PRESETS and item not in found:
                found.append(item)
    return found


def default_workers(n_models: int) -> int:
    """One process per CPU core (at most one per model); 1 when CUDA is available (one GPU, one run at a time)."""
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(n_models, os.cpu_count() or 1))


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when process ``parent_pid`` (its parent) dies, even by ``kill -9``.

    Linux: the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``). Everywhere: a
    daemon thread checks every :data:`WATCHDOG_PERIOD_S` seconds that the parent is still the
    parent (an orphan is re-parented) and exits at once otherwise. If the parent died before
    this call, the process exits now.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="circuits-parent-watchdog", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCHDOG_PERIOD_S)
    os._exit(1)  # orphaned: no cleanup (the run folders are left resumable by their atomic writes)


def _init_worker(threads: int, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes of ``threads`` torch threads each, which die with this process."""
    context = multiprocessing.get_context("spawn")  # no fork of a process whose OpenMP pool is running
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads, os.getpid()))


def _stop_workers(executor: ProcessPoolExecutor) -> None:
    """Cancel the queue and kill the running workers (``shutdown`` alone would let them finish their models)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())  # before shutdown, which forgets them
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)


def _train_one(root: str, settings: dict, cache_dir: str | None, name: str) -> float:
    from circuits.training.zoo import Zoo, ZooSettings

    zoo = Zoo(root, ZooSettings(**settings), cache_dir=cache_dir, progress=False)
    start = time.perf_counter()
    zoo.ensure(name)
    return time.perf_counter() - start


def _steps_done(folder: Path) -> int:
    """The last logged step of a run (0 before its first log line), read from the end of ``metrics.jsonl``."""
    path = folder / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError):
            continue
    return 0


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work for the worker pool: ``fn(*args)`` in a worker process, once every job named in ``after`` succeeded.

    ``fn`` must be a module-level function and ``args`` picklable (they travel to a spawned
    process). ``on_done(value, error)`` runs in this process when the job ends (``error`` is
    ``None`` on success; a job whose dependency failed ends with that error without running).
    ``cost_s``: about how long it runs on one core, in seconds; it only orders the work
    (:func:`run_jobs`).
    """

    label: str
    fn: Callable[..., Any]
    args: tuple
    after: tuple[str, ...] = ()
    cost_s: float = 1.0
    on_done: Callable[[Any, BaseException | None], None] | None = None


def train_parallel(
    zoo: Any, names: Iterable[str | tuple[int, str]], *, workers: int | None = None, log: Callable[[str], None] = print,
    seed_offsets: Sequence[int] | None = None, then: Sequence[Job] = (),
) -> dict[str, float]:
    """Train the models ``names`` of ``zoo`` that are not complete yet, ``workers`` at a time; return ``{label: seconds}`` of those that finished.

    ``names`` holds preset names or ``(seed_offset, name)`` pairs; ``seed_offsets`` (default: the
    zoo's own) trains each plain name once per seed offset, in the zoo of that offset (:meth:`~circuits.training.zoo.Zoo.with_seed_offset`), all in one pool; a label is
    the preset name, with `` seed +k`` for offset k > 0 (:meth:`~circuits.training.zoo.Zoo.label`).
    With one worker (or one missing model, and no ``then`` jobs) the models are trained in this
    process, one after the other. ``workers`` must be a positive int or ``None`` (:func:`default_workers`).

    ``then``: more :class:`Job` s for the same pool (the report's experiment computes), each
    started as soon as the models its ``after`` names (labels as above) are trained and a worker
    is free; a label that names no model trained here counts as done. The order is
    :func:`run_jobs`'s: longest chain of work first.
    """
    from circuits.training.zoo import run_complete

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r} must be a positive integer (or None: one per CPU core)")
    offsets = list(dict.fromkeys([zoo.seed_offset] if seed_offsets is None else seed_offsets))
    pairs: list[tuple[int, str]] = []
    for item in names:
        pairs += [tuple(item)] if isinstance(item, (tuple, list)) else [(k, item) for k in offsets]
    jobs = [(zoo.with_seed_offset(k), n) for k, n in dict.fromkeys(pairs)]
    missing = [(z, n) for z, n in jobs if not run_complete(z.run_dir(n))]
    if not missing and not then:
        return {}
    _prepare_tokens(missing)
    workers = min(len(missing) + len(then), workers or default_workers(len(missing) + len(then)))
    missing.sort(key=lambda job: -_cost(*job))  # longest first (run_jobs orders by what waits for them too)
    if workers == 1 and not then:
        seconds: dict[str, float] = {}
        for z, name in missing:
            start = time.perf_counter()
            z.ensure(name)
            seconds[z.label(name)] = time.perf_counter() - start
        return seconds
    return _train_in_workers(missing, workers, log, then)


def _train_in_workers(missing: list[tuple[Any, str]], workers: int, log: Callable[[str], None], then: Sequence[Job] = ()) -> dict[str, float]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    if missing:
        log(f"training {len(missing)} models in {workers} processes of {threads} thread(s): {', '.join(z.label(n) for z, n in missing)}")
    if then:
        log(f"then, in the same processes as their models are ready: {', '.join(job.label for job in then)}")
    folders = {z.label(n): z.run_dir(n) for z, n in missing}
    bar = _bar(sum(z.configs(n)[1].steps for z, n in missing), missing[0][0].progress) if missing else None
    if bar is not None:
        plain_log = log

        def log(message: str) -> None:  # a line above the bar, not through it
            with bar.external_write_mode():
                plain_log(message)

    seconds: dict[str, float] = {}

    def trained(job: tuple[Any, str]):
        return lambda value, error: _report(job, value, error, seconds, log)

    train_jobs = [Job(z.label(n), _train_one, _job_args(z, n), cost_s=_cost(z, n) * SECONDS_PER_COST, on_done=trained((z, n)))
                  for z, n in missing]

    def tick() -> None:
        if bar is not None:
            bar.n = sum(_steps_done(folder) for folder in folders.values())
            bar.refresh()

    try:
        run_jobs([*train_jobs, *then], workers=workers, threads=threads, tick=tick)
    finally:
        if bar is not None:
            bar.close()
    return seconds


def run_jobs(jobs: Sequence[Job], *, workers: int, threads: int = 1, tick: Callable[[], None] | None = None) -> None:
    """Run ``jobs`` in ``workers`` spawned processes of ``threads`` torch threads, each once its dependencies succeeded.

    Order: highest level first (list scheduling on the critical path): among the jobs that are
    ready, the one with the longest chain of work from its start to the end of the last job that
    waits for it (its ``cost_s`` plus the longest chain after it) starts first; ties in list order.
    So a model whose long compute waits for it trains before a longer model whose compute is
    short, and independent long jobs start early instead of ending up as the tail. Each job's
    ``on_done`` runs here when it ends; a job after a failed one ends with a ``RuntimeError``
    naming it. ``tick`` runs about every second (a progress bar). On any exception here (Ctrl-C
    included) the workers are killed before it propagates.
    """
    labels = {job.label for job in jobs}
    level = chain_levels(jobs)
    queue = list(jobs)
    ok: set[str] = set()
    failed: dict[str, BaseException] = {}
    running: dict[Future, Job] = {}
    executor = worker_pool(workers, threads)
    try:
        while queue or running:
            for job in [j for j in queue if any(d in failed for d in j.after)]:  # its input is missing: never runs
                queue.remove(job)
                failed[job.label] = RuntimeError(f"{job.label} was not run: {next(d for d in job.after if d in failed)} failed")
                _finish(job, None, failed[job.label])
            ready = [j for j in queue if all(d in ok or d not in labels for d in j.after)]
            for job in sorted(ready, key=lambda j: -level[j.label])[: workers - len(running)]:
                queue.remove(job)
                running[executor.submit(job.fn, *job.args)] = job
            if not running:
                break  # nothing can start (a dependency cycle would end here; the queue is left unrun)
            done, _ = wait(set(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                error = future.exception()
                if error is None:
                    ok.add(job.label)
                else:
                    failed[job.label] = error
                _finish(job, None if error is not None else future.result(), error)
            if tick is not None:
                tick()
    except BaseException:
        _stop_workers(executor)
        raise
    executor.shutdown(wait=True)


def chain_levels(jobs: Sequence[Job]) -> dict[str, float]:
    """``{label: seconds}``: each job's ``cost_s`` plus the longest chain of jobs that wait for it (a cycle counts once)."""
    after_me: dict[str, list[Job]] = {job.label: [] for job in jobs}
    for job in jobs:
        for dep in job.after:
            if dep in after_me:
                after_me[dep].append(job)
    level: dict[str, float] = {}

    def visit(job: Job, seen: frozenset) -> float:
        if job.label not in level:
            later = [visit(j, seen | {job.label}) for j in after_me[job.label] if j.label not in seen]
            level[job.label] = job.cost_s + max(later, default=0.0)
        return level[job.label]

    for job in jobs:
        visit(job, frozenset())
    return level


def _finish(job: Job, value: Any, error: BaseException | None) -> None:
    if job.on_done is not None:
        job.on_done(value, error)


def _job_args(zoo: Any, name: str) -> tuple[str, dict, str | None, str]:
    """What a worker needs to rebuild ``zoo`` (its seed offset included) and train ``name``."""
    return str(zoo.root), dataclasses.asdict(zoo.settings), None if zoo.cache_dir is None else str(zoo.cache_dir), name


def _report(job: tuple[Any, str], value: Any, error: BaseException | None, seconds: dict[str, float], log: Callable[[str], None]) -> None:
    zoo, name = job
    label = zoo.label(name)
    if error is None:
        seconds[label] = value
        zoo.timings[name] = zoo.timings.get(name, 0.0) + seconds[label]  # trained in a worker: this zoo did not time it
        log(f"trained {label} in {seconds[label]:.1f} s")
    else:
        log(f"training {label} failed in its worker ({type(error).__name__}: {error}); the experiment that needs it will train it again")


def _prepare_tokens(jobs: Sequence[tuple[Any, str]]) -> None:
    """Train the tokenizer(s) and encode the corpus once, here, before the workers read the cache."""
    from circuits.training.task import tokenize_corpus

    seen = set()
    for zoo, name in jobs:
        model_cfg, train_cfg = zoo.configs(name)
        key = (zoo.corpus.fingerprint, model_cfg.d_vocab, train_cfg.val_fraction, train_cfg.tokenizer_train_chars)
        if key not in seen:
            seen.add(key)
            tokenize_corpus(zoo.corpus, model_cfg, train_cfg, zoo.cache_dir)


#: Seconds per unit of :func:`_cost` on one core: 5000 steps of 16 x 64 tokens took 29, 60, 95 and 125 s
#: for 0, 1, 2 and 3 attention-only layers on the target machine (2026-12-01); only orders the work.
SECONDS_PER_COST = 6.2e-6


def _cost(zoo: Any, name: str) -> int:
    """Rough training cost, for ordering: tokens times (layers + 1)."""
    model_cfg, train_cfg = zoo.configs(name)
    return train_cfg.steps * train_cfg.batch_size * model_cfg.n_ctx * (model_cfg.n_layers + 1)


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training models", unit="step", dynamic_ncols=True, smoothing=0.05)
