"""The experiments, one question each, in report order (see :mod:`circuits.experiments.common` for their shape).

Modules are imported lazily (:func:`load`), so importing this package costs nothing and an
experiment whose module does not exist yet shows up in the report as an error section instead
of breaking the others. ``experiments/<name>.py`` at the repository root runs one experiment
through :func:`cli_main`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

#: Every experiment, in the order the report shows them.
EXPERIMENTS: list[str] = ["zero_layer", "one_layer", "two_layer", "phase_change", "variants", "induction_synthetic", "real_model"]

__all__ = ["EXPERIMENTS", "ExperimentMissing", "load", "cli_main"]


class ExperimentMissing(ImportError):
    """The module ``circuits.experiments.<name>`` does not exist (an import error *inside* it is not this)."""


def load(name: str) -> ModuleType:
    """The module of experiment ``name``; raises :class:`ExperimentMissing` if it does not exist, ``KeyError`` if unknown."""
    if name not in EXPERIMENTS:
        import difflib

        close = difflib.get_close_matches(name, EXPERIMENTS, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KeyError(f"unknown experiment {name!r}; {hint}experiments: {', '.join(EXPERIMENTS)}")
    module_name = f"{__name__}.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:  # the module itself is absent, not something it imports
            raise ExperimentMissing(f"experiment module {module_name} does not exist (yet)") from error
        raise


def cli_main(name: str, argv: Sequence[str] | None = None) -> int:
    """Run experiment ``name`` alone and write a one-section report (``experiments/<name>.py`` calls this).

    Flags: ``--quick`` (tiny models and settings), ``--out DIR`` (default ``figures/<name>``),
    ``--runs DIR`` (trained models and the result cache, default ``runs``), ``--no-png``,
    ``--cache-dir DIR``. Returns the exit status (0, or 1 when the experiment failed).
    """
    import argparse
    import sys

    from circuits.report import pipeline

    parser = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=f"Run the {name} experiment and write its report section.")
    pipeline.add_common_arguments(parser, default_out=f"figures/{name}")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return pipeline.run_from_args(args, only=[name], prog=f"python experiments/{name}.py")
