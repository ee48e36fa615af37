"""Run the ``fine_tuning`` experiment alone: `python experiments/fine_tuning.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/fine_tuning/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("fine_tuning", sys.argv[1:]))
