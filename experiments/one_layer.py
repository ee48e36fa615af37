"""Run the one-layer experiment alone: `python experiments/one_layer.py [--quick] [--out DIR] [--runs DIR]`.

Trains the models it needs on first use (reused from --runs afterwards), caches its results and
writes a one-section report to --out (default figures/one_layer/report.html). The experiment itself is
`circuits.experiments.one_layer` (config, compute, build).
"""

from circuits.experiments import cli_main

if __name__ == "__main__":
    raise SystemExit(cli_main("one_layer"))
