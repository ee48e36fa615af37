"""The experiments, one question each, in report order (see :mod:`circuits.experiments.base` for their shape).

Modules are imported lazily (:func:`load`), so importing this package costs nothing and an
experiment whose module does not exist yet shows up in the report as an error section instead
of breaking the others. ``experiments/<name>.py`` at the repository root runs one experiment
through :func:`circuits.report.experiment_main`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Every experiment, in the order the report shows them.
EXPERIMENTS: list[str] = ["zero_layer", "one_layer", "two_layer", "phase_change", "variants", "induction_synthetic", "real_model", "superposition", "sparse_dictionary", "vision", "grokking", "fine_tuning"]

__all__ = ["EXPERIMENTS", "ExperimentMissing", "load"]


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
