"""Run the ``sparse_dictionary`` experiment alone: `python experiments/sparse_dictionary.py [--quick] [--out DIR] [--runs DIR] [--no-png]`.

Writes a one-section report to ``figures/sparse_dictionary/report.html`` (see ``circuits.report.experiment_main``).
"""

import sys

if __name__ == "__main__":
    from circuits.report import experiment_main

    sys.exit(experiment_main("sparse_dictionary", sys.argv[1:]))
