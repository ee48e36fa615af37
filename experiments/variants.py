"""Induction heads under positional variants (learned, shortformer, rotary, ALiBi, none) and grouped-query attention.

Run: `python experiments/variants.py [--quick] [--out DIR]` (see `circuits.experiments.cli_main`).
"""

import sys

if __name__ == "__main__":
    from circuits.experiments import cli_main

    sys.exit(cli_main("variants", sys.argv[1:]))
