"""The induction-head phase change over the dense checkpoints of the 1L, 2L and smeared-key models.

Run: `python experiments/phase_change.py [--quick] [--out DIR]` (see `circuits.experiments.cli_main`).
"""

import sys

if __name__ == "__main__":
    from circuits.experiments import cli_main

    sys.exit(cli_main("phase_change", sys.argv[1:]))
