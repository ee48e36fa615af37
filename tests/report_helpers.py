"""Shared by the report tests: one quick report per test session (zero- and one-layer sections), and HTML checks.

The quick models live in a session temporary folder; set ``CIRCUITS_TEST_ZOO`` to a folder to
reuse them between sessions (the same layout as ``experiment_helpers.quick_zoo``: ``runs/`` and
``cache/``; the report's result cache goes to ``runs/results``).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The sections the report tests build (the lead's full quick report runs every experiment).
NAMES = ["zero_layer", "one_layer"]

_BUILT: dict[str, "QuickReport"] = {}


@dataclass
class QuickReport:
    run: object  # circuits.report.ReportRun
    out: Path
    runs: Path
    cache: Path
    seconds: float


def zoo_folder(tmp_path_factory) -> Path:
    root = os.environ.get("CIRCUITS_TEST_ZOO")
    return Path(root) if root else tmp_path_factory.getbasetemp() / "report_zoo"


def build_quick_report(tmp_path_factory) -> QuickReport:
    """The quick report of :data:`NAMES`, built once per process (shared by every test module that asks)."""
    if "report" not in _BUILT:
        from circuits.report import make_report

        folder = zoo_folder(tmp_path_factory)
        out = tmp_path_factory.mktemp("report_out")
        start = time.perf_counter()
        run = make_report(NAMES, quick=True, out_dir=out, runs_dir=folder / "runs", cache_dir=folder / "cache", png=True, progress=False)
        _BUILT["report"] = QuickReport(run, out, folder / "runs", folder / "cache", time.perf_counter() - start)
    return _BUILT["report"]


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory) -> QuickReport:
    return build_quick_report(tmp_path_factory)


def figure_div_ids(html: str) -> list[str]:
    """The ids of the plotly figure divs in a report."""
    return re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', html)
