"""Induction heads at toy scale: the phase change and the smeared-key control on repeated spans.

Run: `python experiments/induction_synthetic.py [--quick] [--out DIR]` (see `circuits.experiments.cli_main`).
"""

import sys

if __name__ == "__main__":
    from circuits.experiments import cli_main

    sys.exit(cli_main("induction_synthetic", sys.argv[1:]))
