"""The figure report: HTML structure, claims table, run record, PNG export, result cache and resume, failures.

Most tests read one quick report of the zero- and one-layer experiments (``report_helpers``),
built in-process on the zoo's quick models; the rendering tests use hand-made sections and no models.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import time

import plotly.graph_objects as go
import pytest
from report_helpers import NAMES, build_quick_report, figure_div_ids, quick_report  # noqa: F401 (fixture)

import circuits.experiments as registry
from circuits.experiments.base import Claim, Figure, Section, Table
from circuits.report import experiment_main, make_report, write_report
from circuits.report.export import find_browser


# ---- rendering, without models -------------------------------------------------------------
def _sections() -> list[Section]:
    fig = go.Figure(go.Bar(x=["·the", "⏎"], y=[1, 2]))
    good = Section(
        key="alpha", title="Alpha <section>", intro="Intro with <code>code</code>.",
        figures=[Figure(key="bars", title="Bars", caption="Two bars.", fig=fig), Figure(key="more", title="More", caption="c", fig=go.Figure(go.Scatter(y=[1, 3])))],
        tables=[Table(key="t", title="A table", columns=["token", "value"], rows=[["<b>", 0.5], ["x", 3]])],
        claims=[
            Claim(key="c1", statement="holds", source="paper A", paper_value="1", measured="1.0", holds=True),
            Claim(key="c2", statement="fails <here>", source="paper B", paper_value="> 0", measured="-0.3", holds=False),
            Claim(key="c3", statement="untested", source="paper C", paper_value="?", measured="no model", holds=None),
        ],
        notes=["a caveat"],
    )
    broken = Section(key="beta", title="Beta", intro="failed")
    return [good, broken]


def test_render_structure_claims_and_record(tmp_path):
    import plotly.offline

    record = {"git_commit": "abc123", "corpus_fingerprint": "f00d", "timings_s": {"alpha: compute": 1.5}, "packages": {"torch": "x"}}
    written = write_report(_sections(), tmp_path, record, errors={"beta": "Traceback: boom"}, png=False, log=lambda m: None)
    html = written.html.read_text(encoding="utf-8")
    assert written.html == tmp_path / "report.html"
    # plotly.js embedded exactly once, nothing fetched at view time
    bundle_head = plotly.offline.get_plotlyjs()[:500]
    assert html.count(bundle_head) == 1
    assert "<script src=" not in html  # plotly.js is inline (its bundle mentions cdn.plot.ly only as a config default)
    assert figure_div_ids(html) == ["fig-alpha-bars", "fig-alpha-more"]
    assert html.count("Plotly.newPlot") == 2
    # contents, sections, error section
    for anchor in ("#claims", "#sec-alpha", "#sec-beta", "#run-record"):
        assert f'href="{anchor}"' in html
    assert 'data-section="beta"' in html and "Traceback: boom" in html and 'data-error="1"' in html
    # claims table: every claim, the failing one shown as failing, escaped text
    assert 'id="claims-table"' in html
    assert 'data-claim="c1" data-holds="yes"' in html
    assert 'data-claim="c2" data-holds="no"' in html
    assert 'data-claim="c3" data-holds="untested"' in html
    assert "fails &lt;here&gt;" in html and "1 do not hold" in html.replace("<b>", "").replace("</b>", "")
    # tables escaped; run record with commit, fingerprint, timings and the PNG outcome
    assert "&lt;b&gt;" in html and 'data-table="t"' in html
    assert "abc123" in html and "f00d" in html and "alpha: compute" in html and "disabled (--no-png)" in html
    assert not list(tmp_path.glob(".tmp-*"))


def test_write_is_atomic(tmp_path, monkeypatch):
    import circuits.report.write as write

    write_report(_sections()[:1], tmp_path, {}, png=False, log=lambda m: None)
    before = (tmp_path / "report.html").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted while rendering")

    monkeypatch.setattr(write, "render", boom)
    with pytest.raises(RuntimeError):
        write_report(_sections(), tmp_path, {}, png=False, log=lambda m: None)
    assert (tmp_path / "report.html").read_bytes() == before
    # a writer killed mid-write leaves only a .tmp- file, which the next write removes
    (tmp_path / ".tmp-report.html.abc").write_text("half")
    monkeypatch.undo()
    write_report(_sections()[:1], tmp_path, {}, png=False, log=lambda m: None)
    assert not list(tmp_path.glob(".tmp-*"))


def test_registry_is_lazy_and_names_missing_modules(monkeypatch):
    assert registry.EXPERIMENTS[:2] == ["zero_layer", "one_layer"] and len(set(registry.EXPERIMENTS)) == len(registry.EXPERIMENTS)
    assert all((Path(registry.__file__).parent / f"{name}.py").is_file() for name in registry.EXPERIMENTS)  # every listed module exists
    with pytest.raises(KeyError, match="did you mean zero_layer"):
        registry.load("zero_layers")
    monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "not_written_yet"])
    with pytest.raises(registry.ExperimentMissing, match="does not exist"):
        registry.load("not_written_yet")


# ---- the quick report ----------------------------------------------------------------------
def test_quick_report_sections_figures_and_claims(quick_report):
    run = quick_report.run
    assert run.ok, run.errors
    html = run.html.read_text(encoding="utf-8")
    assert [s.key for s in run.sections] == NAMES
    ids = figure_div_ids(html)
    expected = [f"fig-{s.key}-{f.key}" for s in run.sections for f in s.figures]
    assert ids == expected and len(ids) >= 12
    for section in run.sections:
        assert f'data-section="{section.key}"' in html
        assert section.claims, f"{section.key} has no claims"
        for claim in section.claims:
            assert f'data-claim="{claim.key}"' in html
            assert claim.holds in (True, False, None)
    claim_keys = {c.key for s in run.sections for c in s.claims}
    assert {"zero_layer_bigram", "one_layer_beats_bigram", "one_layer_copying", "one_layer_no_induction"} <= claim_keys
    assert html.count('class="plotly-graph-div"') == len(expected)
    # token strings on axes: the most frequent token of the corpus is on the one-layer heatmaps
    one = next(s for s in run.sections if s.key == "one_layer")
    ov = next(f for f in one.figures if f.key == "ov_circuits").fig
    assert all(isinstance(t, str) for t in ov.data[0].x)
    assert len(ov.data[0].x) == len(ov.data[0].y) >= 10


def test_quick_report_run_record(quick_report):
    html = quick_report.run.html.read_text(encoding="utf-8")
    assert 'id="run-record"' in html
    for needle in ("git_commit", "corpus_fingerprint", "torch", "plotly", "model_seed", "Time per stage", "zero_layer: compute", "png_export"):
        assert needle in html, needle
    assert quick_report.run.timings["total"] > 0


def test_quick_report_pngs(quick_report):
    run = quick_report.run
    expected = {f"{s.key}-{f.key}.png" for s in run.sections for f in s.figures}
    if find_browser() is None:
        assert run.png.skipped and not run.png.written
        pytest.skip("no Chromium for kaleido: the PNG export was skipped with a reason, as it should")
    if importlib.util.find_spec("kaleido") is None:
        assert run.png.skipped and "pip install kaleido" in run.png.skipped and not run.png.written
        pytest.skip("kaleido is not installed: the PNG export was skipped with a reason, as it should")
    assert run.png.skipped is None, run.png.skipped
    assert {p.name for p in (quick_report.out / "png").iterdir()} == expected
    for path in (quick_report.out / "png").iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_are_cached_as_json(quick_report):
    files = sorted((quick_report.runs / "results").glob("*.json"))
    assert {f.name.split("-")[0] for f in files} >= set(NAMES)
    for f in files:
        data = json.loads(f.read_text())
        assert {"experiment", "code", "config", "zoo_key", "models", "results"} <= set(data)


def test_rerun_uses_cache_without_training_or_computing(quick_report, tmp_path, monkeypatch):
    from circuits.experiments import one_layer, zero_layer

    def no_compute(cfg, zoo):
        raise AssertionError("compute ran although its results are cached")

    monkeypatch.setattr(zero_layer, "compute", no_compute)
    monkeypatch.setattr(one_layer, "compute", no_compute)
    start = time.perf_counter()
    run = make_report(NAMES, quick=True, out_dir=tmp_path, runs_dir=quick_report.runs, cache_dir=quick_report.cache, png=False, progress=False, log=lambda m: None)
    seconds = time.perf_counter() - start
    assert run.ok, run.errors
    assert run.cached == {name: True for name in NAMES}
    assert run.trained == {}
    assert seconds < max(60.0, quick_report.seconds / 2), f"rerun took {seconds:.1f} s (first run {quick_report.seconds:.1f} s)"
    assert figure_div_ids(run.html.read_text()) == figure_div_ids(quick_report.run.html.read_text())


def test_failing_and_missing_experiments_are_reported_and_exit_nonzero(quick_report, tmp_path, monkeypatch):
    from circuits.cli import main
    from circuits.experiments import one_layer

    def broken(result):
        raise RuntimeError("figure builder exploded")

    monkeypatch.setattr(one_layer, "figures", broken)
    monkeypatch.setattr(registry, "EXPERIMENTS", [*registry.EXPERIMENTS, "not_written_yet"])
    common = ["--quick", "--out", str(tmp_path), "--runs", str(quick_report.runs), "--cache-dir", str(quick_report.cache), "--no-png", "--no-progress"]
    code = main(["report", *common, "--only", "zero_layer", "one_layer", "not_written_yet"])
    assert code == 1
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count('data-error="1"') == 2
    assert "figure builder exploded" in html and "does not exist" in html
    assert figure_div_ids(html)[0].startswith("fig-zero_layer-")  # the working section is still there
    assert main(["report", *common, "--only", "no_such_experiment"]) == 2


def test_single_experiment_script(quick_report, tmp_path):
    code = experiment_main("zero_layer", ["--quick", "--out", str(tmp_path), "--runs", str(quick_report.runs), "--cache-dir", str(quick_report.cache), "--no-png"])
    assert code == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'data-section="zero_layer"' in html and 'data-section="one_layer"' not in html
