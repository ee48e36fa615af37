"""Run the ``one_layer`` experiment alone: `python experiments/one_layer.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/one_layer/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("one_layer", sys.argv[1:]))
