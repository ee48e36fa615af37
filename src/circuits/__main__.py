"""``python -m circuits`` (and ``torchrun -m circuits``): the ``circuits`` command."""

from circuits.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
