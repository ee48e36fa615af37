"""A real pretrained model: all-MiniLM-L6-v2's attention heads on real sentences.

Run: `python experiments/real_model.py [--quick] [--out DIR]` (see `circuits.experiments.cli_main`).
"""

import sys

if __name__ == "__main__":
    from circuits.experiments import cli_main

    sys.exit(cli_main("real_model", sys.argv[1:]))
