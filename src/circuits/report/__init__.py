"""The figure report: one self-contained HTML file with every experiment's section, the claims table and a run record.

The report only renders: :mod:`circuits.runner` (below it) computes the sections.

- :func:`make_report` (``make.py``): run the experiments, then write; also the ``circuits report`` command line.
- :func:`write_report` (``write.py``): sections + run record -> ``report.html`` (+ ``png/``).
- ``html.py`` renders, ``export.py`` does the static PNG export (kaleido; optional).
"""

from circuits.report.make import ReportRun, add_arguments, experiment_main, make_report, run
from circuits.report.write import WrittenReport, write_report

__all__ = ["write_report", "WrittenReport", "make_report", "ReportRun", "add_arguments", "run", "experiment_main"]
