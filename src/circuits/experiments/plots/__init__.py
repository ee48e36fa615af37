"""The one plotting module: pure figure builders, numbers and labels in, a ``plotly.graph_objects.Figure`` out.

Nothing here touches disk or calls ``.show()``; the report (:mod:`circuits.report`) embeds the
figures and exports them. Token strings are shown as they are, made visible: :func:`token_label`
turns spaces, newlines and tabs into ``·``, ``⏎`` and ``⇥`` so that ``" the"`` and ``"the"``
are told apart on an axis, and duplicates get a ``#id`` suffix (plotly merges equal category labels).
Every builder uses the same template and colour cycle (:mod:`.style`); long titles are wrapped
with :func:`wrap_title` (plotly never wraps a title, and the static export is 700 px wide).

- ``style``: template, colours, grids, titles, token labels
- ``heatmaps``: labelled heatmaps, head grids, attention patterns, token circuits
- ``charts``: bars, lines, scatters, boxes, panels of them
- ``training_curves``: curves over training checkpoints
- ``geometry``: feature directions in 2-D panels, categorical phase diagrams
"""

from circuits.experiments.plots.charts import *  # noqa: F401,F403
from circuits.experiments.plots.training_curves import *  # noqa: F401,F403
from circuits.experiments.plots.heatmaps import *  # noqa: F401,F403
from circuits.experiments.plots.style import *  # noqa: F401,F403
from circuits.experiments.plots import charts as _charts, training_curves as _curves, heatmaps as _heatmaps, style as _style

__all__ = [*_style.__all__, *_heatmaps.__all__, *_charts.__all__, *_curves.__all__]

from circuits.experiments.plots.geometry import *  # noqa: E402,F401,F403
from circuits.experiments.plots import geometry as _geometry  # noqa: E402

__all__ += _geometry.__all__
