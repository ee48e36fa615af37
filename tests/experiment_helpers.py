"""Shared by the experiment smoke tests: one quick zoo per test session, and the checks every section must pass.

Import the fixture into a test module (``from experiment_helpers import quick_zoo``). The zoo lives
in a session temporary folder; set ``CIRCUITS_TEST_ZOO`` to a folder to reuse trained quick models
between sessions (the zoo keys runs by config, corpus and code version, so a stale run is never reused).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.training.zoo import Zoo, ZooSettings


@pytest.fixture(scope="session")
def quick_zoo(tmp_path_factory) -> Zoo:
    root = os.environ.get("CIRCUITS_TEST_ZOO")
    folder = Path(root) if root else tmp_path_factory.mktemp("quick_zoo")
    return Zoo(folder / "runs", ZooSettings(quick=True), cache_dir=folder / "cache", progress=False)


def finite_json(results: dict) -> dict:
    """``results`` through a strict JSON round trip (no NaN or infinity anywhere), and every number finite."""
    text = json.dumps(results, allow_nan=False)
    back = json.loads(text)
    _check_numbers(back, "results")
    return back


def _check_numbers(value, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value}"
    else:
        assert value is None or isinstance(value, (int, str, bool)), f"{where} has a {type(value).__name__}"


def check_section(section: Section, key: str, figure_keys: set[str], claim_keys: set[str]) -> None:
    """The section has the expected figures (plotly, with captions) and claims (measured value, holds True/False/None)."""
    import plotly.graph_objects as go

    assert isinstance(section, Section) and section.key == key and section.title and section.intro
    keys = [f.key for f in section.figures]
    assert len(keys) == len(set(keys)), f"duplicate figure keys {keys}"
    assert figure_keys <= set(keys), f"missing figures {figure_keys - set(keys)}"
    for figure in section.figures:
        assert isinstance(figure, Figure) and isinstance(figure.fig, go.Figure)
        assert figure.title and figure.caption
        assert figure.fig.data, f"figure {figure.key} has no traces"
        figure.fig.to_json()  # serialisable (the report embeds it)
        assert "nan" not in figure.caption.lower().split(), f"{figure.key} caption has a nan: {figure.caption}"
    assert {c.key for c in section.claims} == claim_keys
    for claim in section.claims:
        assert isinstance(claim, Claim)
        assert claim.statement and claim.source and claim.paper_value and claim.measured
        assert claim.holds in (True, False, None)
    for table in section.tables:
        assert isinstance(table, Table) and table.rows and all(len(row) == len(table.columns) for row in table.rows)
