"""Run the ``vision`` experiment alone: `python experiments/vision.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/vision/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("vision", sys.argv[1:]))
