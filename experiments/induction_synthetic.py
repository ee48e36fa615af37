"""Run the ``induction_synthetic`` experiment alone: `python experiments/induction_synthetic.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/induction_synthetic/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("induction_synthetic", sys.argv[1:]))
