"""Interactive views of circuits: attention, values over tokens, logit attribution, weight circuits; offline, one script per page.

Layer: between ``analysis`` and ``experiments`` (experiments return views in their report
sections; the report, the ``circuits explore`` server and notebooks show them). Each function
returns a :class:`View` that renders in Jupyter (``_repr_html_``) and saves as one
self-contained HTML file (:meth:`View.save`); :func:`page` puts several on one page. The
drawing is our own small script (:mod:`circuits.views.script`), embedded once per page; nothing
is fetched from the network. See ``docs/views.md``.

From numbers (:mod:`circuits.views.builders`): :func:`attention`, :func:`token_values`,
:func:`loss_difference`, :func:`logit_attribution`, :func:`circuit_matrix`, :func:`composition`,
:func:`logit_lens_table`. From a model (:mod:`circuits.views.from_model`): :func:`model_attention`,
:func:`model_loss`, :func:`model_logit_attribution`, :func:`model_logit_lens`,
:func:`model_circuit`, :func:`model_composition`. The local explorer: :mod:`circuits.views.explore`.
"""

from circuits.views.builders import (
    aligned_loss, attention, circuit_matrix, composition, logit_attribution, logit_lens_table, loss_difference, token_values,
)
from circuits.views.from_model import (
    attention_patterns, model_attention, model_circuit, model_composition, model_logit_attribution, model_logit_lens, model_loss,
)
from circuits.views.page import View, head_html, page

__all__ = [
    "View", "page", "head_html", "attention", "token_values", "loss_difference", "aligned_loss", "logit_attribution", "circuit_matrix",
    "composition", "logit_lens_table", "attention_patterns", "model_attention", "model_loss", "model_logit_attribution",
    "model_logit_lens", "model_circuit", "model_composition",
]
