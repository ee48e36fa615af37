"""The views in a real browser: Playwright for Python drives Debian's Chromium (``/usr/bin/chromium``, never a downloaded one).

A report page with interactive views (and a plotly figure beside them) and the ``circuits explore``
page load with no console error and no request leaving the machine; clicking another head changes
the shown pattern; typing text in the explorer updates its views. Screenshots go to the test's
temporary folder, and to ``figures/views-*.png`` when ``CIRCUITS_SCREENSHOTS=1`` (the README's).
``CIRCUITS_EXPLORE_CHECKPOINT`` points the explorer test at a trained checkpoint instead of a
random tiny model.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from activation_models import induction_model, copying_prev_model
from test_explore import tiny_checkpoint

from circuits import views

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium package)")

FIGURES = Path(__file__).resolve().parents[1] / "figures"
TIMEOUT_MS = 90_000  # a loaded 2-core machine is slow to start Chromium and parse plotly.js
TOKENS = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]])


def shot(element_or_page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"views-{name}.png"
    element_or_page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("CIRCUITS_SCREENSHOTS") == "1":
        shutil.copyfile(path, FIGURES / path.name)


class Watch:
    """Console errors, page errors and every request that is not a local file or loopback (those are aborted)."""

    def __init__(self, page):
        self.errors, self.outside = [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.route("**/*", self.route)

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith(("file://", "http://127.0.0.1:", "data:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def report_page(tmp_path: Path) -> Path:
    """A report (the real renderer, plotly.js embedded) with one plotly figure and the views of a hand-built induction model."""
    import plotly.graph_objects as go
    import plotly.offline

    from circuits.analysis.activations.head_picks import per_token_loss
    from circuits.experiments.base import Figure, Section, View
    from circuits.report.html import render

    model, control = induction_model(), copying_prev_model()
    text = [f" t{int(t)}" for t in TOKENS[0]]
    shown = [
        View(key="attention", title="Attention", caption="L0H0 previous-token head, L1H0 induction head",
             view=views.attention(text, views.attention_patterns(model, TOKENS), selected="L0H0")),
        View(key="loss", title="Loss difference", caption="two-layer minus one-layer model",
             view=views.loss_difference(text, per_token_loss(control, TOKENS)[0], per_token_loss(model, TOKENS)[0], names=("1L", "2L"))),
        View(key="composition", title="Composition", caption="click a pair", view=views.model_composition(model)),
        View(key="attribution", title="Attribution", caption="position 9", view=views.model_logit_attribution(model, TOKENS, 9)),
    ]
    figure = Figure(key="bars", title="A plotly figure", caption="beside the views", fig=go.Figure(go.Bar(y=[1, 2, 3])))
    section = Section(key="demo", title="Views in the report", intro="A hand-built induction model.", figures=[figure], views=shown)
    path = tmp_path / "report.html"
    path.write_text(render([section], {}, plotly_js=plotly.offline.get_plotlyjs(), title="views"), encoding="utf-8")
    return path


def canvas_image(page, selector: str) -> str:
    return page.eval_on_selector(selector, "c => c.toDataURL()")


def test_report_views_load_offline_and_respond_to_clicks(browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    watch = Watch(page)
    page.goto(report_page(tmp_path).as_uri(), timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('div.cv-view[data-rendered]').length === 4", timeout=TIMEOUT_MS)
    page.wait_for_selector("div[data-rendered='1'].plotly-graph-div, div.plotly-graph-div[data-rendered='1']", timeout=TIMEOUT_MS)
    attention = "#view-demo-attention"
    assert page.get_attribute(attention, "data-head") == "L0H0"
    before = canvas_image(page, f"{attention} .cv-big canvas")
    page.click(f"{attention} .cv-thumb[data-head='L1H0']")
    assert page.get_attribute(attention, "data-head") == "L1H0"
    assert canvas_image(page, f"{attention} .cv-big canvas") != before
    page.hover(f"{attention} .cv-big canvas", position={"x": 5, "y": 5})
    assert "query 0" in page.inner_text(".cv-tip")
    page.click("#view-demo-composition canvas", position={"x": 5, "y": 5})
    assert page.get_attribute("#view-demo-composition", "data-pair") == "L0H0>L1H0"
    page.click("#view-demo-loss .cv-btn[data-i='1']")
    assert page.get_attribute("#view-demo-loss", "data-series") == "loss 1L"
    assert page.inner_text("#report-errors").strip() == ""
    assert not watch.errors, watch.errors
    assert not watch.outside, watch.outside
    shot(page.locator("#figure-view-demo-attention"), tmp_path, "report-attention")
    page.click("#view-demo-loss .cv-btn[data-i='0']")
    shot(page.locator("#figure-view-demo-loss"), tmp_path, "report-loss")
    page.close()


@pytest.fixture(scope="module")
def explorer_url(tmp_path_factory):
    from circuits.views.explore import Explorer
    from circuits.views.server import DEFAULT_TEXT, make_server

    checkpoint = os.environ.get("CIRCUITS_EXPLORE_CHECKPOINT") or tiny_checkpoint(tmp_path_factory.mktemp("explore") / "ckpt")
    server = make_server(Explorer.open(checkpoint), port=0, text=DEFAULT_TEXT[:32])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def analyzed(page) -> int:
    return int(page.get_attribute("body", "data-analyzed") or 0)


def test_explorer_updates_views_as_text_is_typed(browser, explorer_url, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    watch = Watch(page)
    page.goto(explorer_url, timeout=TIMEOUT_MS)
    page.wait_for_selector("body[data-answered]", state="attached", timeout=TIMEOUT_MS)
    assert page.inner_text("#error") == "", page.inner_text("#error")
    n_before = page.locator("#attention .cv-thumb").count()
    assert n_before >= 4
    count = analyzed(page)
    page.fill("#text", "")
    page.type("#text", "import json\nimport os\nimport json", delay=5)
    page.wait_for_function(f"Number(document.body.getAttribute('data-analyzed')) > {count}", timeout=TIMEOUT_MS)
    page.wait_for_function("document.getElementById('status').textContent.indexOf('tokens') >= 0", timeout=TIMEOUT_MS)
    tokens = page.locator("#loss .cv-tok").all_inner_texts()
    assert "".join(tokens).replace("·", " ").replace("↵", "\n").endswith("json") or len(tokens) > 5
    before = canvas_image(page, "#attention .cv-big canvas")
    page.click("#attention .cv-thumb[data-head='L1H1']")
    assert page.get_attribute("#attention", "data-head") == "L1H1"
    assert canvas_image(page, "#attention .cv-big canvas") != before
    count = analyzed(page)
    page.check("#ablate-L0H0")
    page.wait_for_function(f"Number(document.body.getAttribute('data-analyzed')) > {count}", timeout=TIMEOUT_MS)
    assert "ablated L0H0" in page.inner_text("#status")
    assert page.get_attribute("#attention", "data-head") == "L1H1"  # the chosen head stays shown
    assert not watch.errors, watch.errors
    assert not watch.outside, watch.outside
    shot(page, tmp_path, "explorer")
    page.fill("#text", "word " * 2000)  # longer than the context: a message on the page, the server keeps serving
    page.wait_for_function("document.getElementById('error').style.display === 'block'", timeout=TIMEOUT_MS)
    assert "shorten it" in page.inner_text("#error")
    page.close()


@pytest.mark.skipif(not os.environ.get("CIRCUITS_VIEWS_REPORT"), reason="set CIRCUITS_VIEWS_REPORT to a built report.html (e.g. the quick report)")
def test_a_built_report_draws_its_views(browser, tmp_path):
    """A report ``circuits report`` wrote (two_layer and phase_change sections): every view drawn, no error, nothing fetched."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    watch = Watch(page)
    page.goto(Path(os.environ["CIRCUITS_VIEWS_REPORT"]).resolve().as_uri(), timeout=TIMEOUT_MS)
    page.wait_for_function("document.readyState === 'complete'", timeout=TIMEOUT_MS)
    n_views = page.locator("div.cv-view").count()
    assert n_views >= 1
    page.wait_for_function(f"document.querySelectorAll('div.cv-view[data-rendered]').length === {n_views}", timeout=TIMEOUT_MS)
    attention = "#view-two_layer-two_layer_text_attention"
    if page.locator(attention).count():
        before = canvas_image(page, f"{attention} .cv-big canvas")
        other = page.locator(f"{attention} .cv-thumb:not(.cv-on)").first
        label = other.get_attribute("data-head")
        other.click()
        assert page.get_attribute(attention, "data-head") == label
        assert canvas_image(page, f"{attention} .cv-big canvas") != before
    assert page.inner_text("#report-errors").strip() == ""
    assert not watch.errors, watch.errors
    assert not watch.outside, watch.outside
    page.close()
