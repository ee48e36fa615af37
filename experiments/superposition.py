"""Run the ``superposition`` experiment alone: `python experiments/superposition.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/superposition/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("superposition", sys.argv[1:]))
