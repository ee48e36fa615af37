"""The figure report: one self-contained HTML file with every experiment's section, the claims table and a run record.

- :func:`write_report` (``write.py``): sections + run record -> ``report.html`` (+ ``png/``).
- :func:`make_report` (``pipeline.py``): run the experiments with a result cache, then write.
- ``html.py`` renders, ``export.py`` does the static PNG export (kaleido; optional).

``add_arguments``/``run`` are the ``circuits report`` subcommand.
"""

from circuits.report.pipeline import ReportRun, add_arguments, make_report, run
from circuits.report.write import WrittenReport, write_report

__all__ = ["write_report", "WrittenReport", "make_report", "ReportRun", "add_arguments", "run"]
