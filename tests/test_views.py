"""The views (:mod:`circuits.views`): each page holds its data exactly once and no network address; inputs are checked;
direct logit attribution sums to the logit; the report renders a section's views with the script once."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from activation_models import induction_model

from circuits import views
from circuits.analysis.activations.attribution import direct_logit_attribution
from circuits.experiments.base import Section, View
from circuits.views.page import data_json
from circuits.views.script import SCRIPT

TOKENS = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7]])
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|(?:src|href)\s*=\s*["'](?!#)""", re.I)


@pytest.fixture(scope="module")
def model():
    return induction_model()


def all_views(model) -> list[views.View]:
    return [
        views.model_attention(model, TOKENS), views.model_loss(model, TOKENS), views.model_logit_attribution(model, TOKENS, 8),
        views.model_logit_lens(model, TOKENS, 8), views.model_circuit(model, "L1H0", "OV", [1, 2, 3]),
        views.model_circuit(model, (1, 0), "QK", [1, 2, 3]), views.model_composition(model, baseline={"K": 0.1}),
        views.loss_difference(["a", "b", "c"], [1.0, 2.0], [0.5, 2.5]),
    ]


def test_each_view_holds_its_data_once_and_no_external_address(model, tmp_path):
    for view in all_views(model):
        page = view.html()
        assert page.count(view.data_json()) == 1, view.kind
        assert page.count(SCRIPT) == 1, view.kind
        assert not EXTERNAL.search(page), (view.kind, EXTERNAL.search(page))
        saved = view.save(tmp_path / f"{view.kind}.html")
        assert saved.read_text(encoding="utf-8") == page
        notebook = view._repr_html_()
        assert notebook.count(view.data_json()) == 1 and "renderAll" in notebook


def test_a_page_of_several_views_embeds_the_script_once(model):
    shown = all_views(model)
    page = views.page(shown, title="all")
    assert page.count(SCRIPT) == 1
    assert all(page.count(v.data_json()) == 1 for v in shown)
    ids = re.findall(r'<div class="cv-view" id="([^"]+)"', page)
    assert len(ids) == len(set(ids)) == len(shown)


def test_attention_view_keeps_the_causal_pattern(model):
    view = views.model_attention(model, TOKENS, selected="L1H0")
    data = view.data
    assert data["labels"][data["selected"]] == "L1H0" and len(data["labels"]) == 6
    rows = data["patterns"][0]  # L0H0: the previous-token head
    assert [len(r) for r in rows] == list(range(1, 14))
    assert all(r[q - 1] > 0.99 for q, r in enumerate(rows) if q >= 1)
    induction = data["patterns"][3]  # L1H0 attends from the second copy of token t to the token after its first copy
    assert induction[7][3] > 0.99  # query 7 (token 2, second copy) -> key 3 (after the first 2 at position 2)


def test_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="tokens"):
        views.attention(["a", "b"], np.ones((3, 3)))
    with pytest.raises(ValueError, match="labels"):
        views.attention(["a", "b"], np.ones((2, 2, 2)), labels=["x"])
    with pytest.raises(ValueError, match="no such head"):
        views.attention(["a", "b"], np.ones((2, 2, 2)), selected="H9")


def test_attribution_components_sum_to_the_logit(model):
    view = views.model_logit_attribution(model, TOKENS, 8)
    data = view.data
    total = sum(value for _, value in data["components"])
    assert abs(total - data["logit"]) < 1e-4 * max(1.0, abs(data["logit"]))
    dla = direct_logit_attribution(model, TOKENS)
    target = int(TOKENS[0, 9])
    assert data["logit"] == pytest.approx(float(dla.logits[0, 8, target]), abs=1e-5)
    ranked = dict(data["components"])
    assert max(ranked, key=lambda k: abs(ranked[k])) == "L1H0"  # the induction head predicts the repeated token


def test_attribution_refuses_components_that_do_not_add_up():
    with pytest.raises(ValueError, match="not a complete decomposition"):
        views.logit_attribution(["a", "b"], [1.0, 2.0], 4.0, position=0, token="x", target="y")
    view = views.logit_attribution(["a", "b"], [1.0, 2.0], 3.0, position=0, token="x", target="y")
    assert view.data["components"] == [["a", 1.0], ["b", 2.0]]


def test_token_values_and_loss_difference():
    view = views.loss_difference(["<s>", "a", "b"], [2.0, 1.0], [1.5, 3.0], names=("early", "late"))
    first = view.data["series"][0]
    assert first["name"] == "loss late - early" and first["diverging"] and first["values"] == [None, -0.5, 2.0]
    with pytest.raises(ValueError, match="one value per token"):
        views.token_values(["a", "b"], {"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="not series"):
        views.token_values(["a"], {"x": [1.0]}, diverging=["y"])


def test_composition_view_pairs_writers_and_readers(model):
    data = views.model_composition(model).data
    assert data["writers"] == ["L0H0", "L0H1", "L0H2"] and data["readers"] == ["L1H0", "L1H1", "L1H2"]
    assert set(data["scores"]) == {"Q", "K", "V"}
    k = np.array(data["scores"]["K"], dtype=float)
    assert np.unravel_index(np.nanargmax(k), k.shape) == (0, 0)  # L0H0 -> L1H0: the K-composition of the induction circuit


def test_data_json_cannot_close_its_script():
    text = data_json({"tokens": ["</script><script>alert(1)</script>", "<!--"]})
    assert "</" not in text and "<!--" not in text


def test_report_renders_views_once_with_one_script(model):
    from circuits.report.html import render

    shown = [View(key="attn", title="Attention", caption="every head", view=views.model_attention(model, TOKENS)),
             View(key="loss", title="Loss", caption="per token", view=views.model_loss(model, TOKENS))]
    page = render([Section(key="demo", title="Demo", intro="x", views=shown)], {}, plotly_js="", title="t")
    assert page.count(SCRIPT) == 1
    assert all(page.count(v.view.data_json()) == 1 for v in shown)
    assert 'id="view-demo-attn"' in page and 'id="view-demo-loss"' in page
    assert "circuits-views-js" not in render([Section(key="plain", title="Plain", intro="x")], {}, plotly_js="", title="t")
