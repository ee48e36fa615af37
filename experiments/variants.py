"""Run the ``variants`` experiment alone: `python experiments/variants.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/variants/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("variants", sys.argv[1:]))
