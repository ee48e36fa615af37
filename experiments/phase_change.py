"""Run the ``phase_change`` experiment alone: `python experiments/phase_change.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/phase_change/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("phase_change", sys.argv[1:]))
