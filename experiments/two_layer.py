"""Two-layer attention-only model: previous-token and induction heads, composition, ablation, term importance.

Run: `python experiments/two_layer.py [--quick] [--out DIR]` (see `circuits.experiments.cli_main`).
"""

import sys

if __name__ == "__main__":
    from circuits.experiments import cli_main

    sys.exit(cli_main("two_layer", sys.argv[1:]))
