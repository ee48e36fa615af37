"""Run every benchmark in turn (``make bench``); each prints its own table of ratios.

    python benchmarks/run_all.py [--only bench_model bench_training ...]

Each script runs in its own process (so peak-memory figures are per script) with this
interpreter; extra arguments are not forwarded: run a script alone to change its settings.
A failing script is reported and the others still run; the exit status is 1 if any failed.
``bench_training`` trains whole 5000-step preset runs (three variants, three rounds, each run in
its own process): about 15 minutes on 2 cores; the others take a few minutes together.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_model", "bench_cache_floor", "bench_training", "bench_seed_batching", "bench_weights", "bench_scores_memory", "bench_sae", "bench_vit", "bench_grokking", "bench_finetune"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, default=SCRIPTS)
    args = parser.parse_args()
    failed = []
    for name in args.only:
        print(f"\n# {name}\n", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"\n({name}: {time.perf_counter() - start:.0f} s, exit status {code})", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
