"""One self-contained HTML file from report sections: contents, claims table, sections, run record.

plotly.js is embedded once, in the head (no network at view time); every figure is a ``<div>``
plus the small script plotly writes for it. A tiny script before plotly.js records JavaScript
errors into ``window.__reportErrors`` and shows them in a visible banner, and each figure marks
its ``<div>`` with ``data-rendered="1"`` once plotly has drawn it, so that a headless browser
(``chromium --dump-dom``) can check the report rendered (``tests/test_report_browser.py``).
Interactive views (:mod:`circuits.views`, a section's ``views``) are a ``<div>`` and their JSON data
each; their shared script is embedded once in the head when any section has one, and marks each
drawn view's ``<div>`` with ``data-rendered="1"`` too.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from circuits.experiments.base import Claim, Figure, Section, Table, View
from circuits.views.page import head_html

__all__ = ["render", "figure_div_id", "view_div_id", "claims_rows", "seeds_text", "value_text", "HOW_TO_READ"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1200px; margin: 0 auto; padding: 1em 2em; color: #222; line-height: 1.45; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2.2em; }
.meta { color: #666; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td code, li code { background: #f6f6f6; padding: 0 .2em; }
.yes { background: #e3f6e3; } .no { background: #fbe0e0; font-weight: bold; } .untested { background: #f1f1f1; color: #555; }
figure { margin: 1.4em 0; } figcaption { color: #444; font-size: .92em; margin-top: .3em; }
.error { background: #fbe0e0; border: 1px solid #d88; padding: .6em 1em; }
.error pre { white-space: pre-wrap; font-size: .8em; }
.notes { color: #555; font-size: .92em; }
#report-errors { display: none; position: sticky; top: 0; z-index: 10; }
#report-errors.shown { display: block; }
.tok { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre; }
"""

# Before plotly.js: collect errors (also from plotly's own scripts) and show them.
_ERROR_SCRIPT = """
window.__reportErrors = [];
function __reportError(message) {
  window.__reportErrors.push(String(message));
  var box = document.getElementById('report-errors');
  if (box) { box.className = 'error shown'; box.textContent = 'JavaScript errors while drawing this report: ' + window.__reportErrors.join(' | '); }
}
window.addEventListener('error', function (e) { __reportError(e.message + (e.filename ? ' (' + e.filename + ':' + e.lineno + ')' : '')); });
window.addEventListener('unhandledrejection', function (e) { __reportError('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
"""

_MARK_RENDERED = "var d = document.getElementById('{plot_id}'); if (d) { d.setAttribute('data-rendered', '1'); }"


def figure_div_id(section: str, key: str) -> str:
    return f"fig-{section}-{key}"


def view_div_id(section: str, key: str) -> str:
    return f"view-{section}-{key}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    return f"<td>{_e(value)}</td>"


def _holds(holds: bool | None) -> tuple[str, str]:
    return {True: ("yes", "yes"), False: ("no", "no"), None: ("untested", "untested")}[holds]


def claims_rows(sections: Sequence[Section]) -> list[tuple[Section, Claim]]:
    return [(section, claim) for section in sections for claim in section.claims]


#: How to read the claims table (shown above it).
HOW_TO_READ = (
    "How to read this table: each row is one claim of the papers and a fixed test of it, stated in the row "
    "(thresholds taken from the papers' numbers and wording, not tuned on this run). <b>holds: yes</b> means the test "
    "passed on every seed on which it could be run; <b>no</b> means it failed on at least one (the seeds column says on "
    "how many it held); <b>untested</b> means this run could not test it (the measured text says why). Sections marked "
    "with several seeds retrain their models with other seeds (initialisation and batch order; the probes' random tokens "
    "change too) and recompute everything: the value column gives the range of the number each verdict turns on over the "
    "seeds, while 'measured' and the figures are seed 0's. A claim that holds here holds for these small models on the data "
    "named in its row, not for the papers' models."
)


def seeds_text(claim: Claim) -> str:
    """``"3 of 3"`` (held of tested seeds, and how many could not test it), ``"untested on 3"``, or ``"1 (single run)"`` for a claim computed once."""
    if claim.seeds_tested is None:
        return "1 (single run)"
    if claim.seeds_tested == 0:
        return f"untested on {claim.seeds_run or 0}"
    text = f"{claim.seeds_held} of {claim.seeds_tested}"
    untested = (claim.seeds_run or claim.seeds_tested) - claim.seeds_tested
    return text + (f" ({untested} untested)" if untested else "")


def value_text(claim: Claim) -> str:
    """The spread of the claim's value over seeds (``"0.31 to 0.52"``), its single value, or empty."""
    if claim.value_range is not None and (claim.seeds_run or 1) > 1:
        low, high = claim.value_range
        return f"{low:.3g}" if low == high else f"{low:.3g} to {high:.3g}"
    return "" if claim.value is None else f"{claim.value:.3g}"


def _models_text(claim: Claim) -> str:
    models = ", ".join(claim.models)
    return f"{models} ({claim.seeds_run} seeds each)" if models and (claim.seeds_run or 1) > 1 else models


def _data_header(record: dict) -> str:
    data = record.get("training data")
    if not isinstance(data, dict) or not data:
        return ""
    items = "".join(f"<li><b>{_e(label)}</b>: {_e(', '.join(presets))}</li>" for label, presets in data.items())
    return (f"<p>What the zoo models behind these claims saw in training (each row's data column says which applies; models "
            f"a section trains itself are described in that section):</p><ul>{items}</ul>")


def _claims_table(sections: Sequence[Section], record: dict | None = None) -> str:
    rows = claims_rows(sections)
    counts = {True: 0, False: 0, None: 0}
    for _, claim in rows:
        counts[claim.holds] += 1
    seeds = (record or {}).get("seeds")
    seeds_line = f" Seeded sections were run on {seeds} seed(s)." if seeds else ""
    out = [
        '<h2 id="claims">Claims</h2>',
        f"<p>{len(rows)} checkable claims of the papers measured on this run: <b>{counts[True]} hold</b>, "
        f"<b>{counts[False]} do not hold</b>, {counts[None]} untested. A claim that does not hold is listed as such; "
        f"nothing is left out.{seeds_line}</p>",
        _data_header(record or {}),
        f'<p class="how-to-read">{HOW_TO_READ}</p>',
        '<table id="claims-table"><thead><tr><th>#</th><th>claim</th><th>source</th><th>paper</th><th>measured</th><th>holds</th>'
        "<th>seeds held</th><th>value</th><th>models</th><th>data</th><th>section</th></tr></thead><tbody>",
    ]
    for i, (section, claim) in enumerate(rows, 1):
        word, cls = _holds(claim.holds)
        out.append(
            f'<tr data-claim="{_e(claim.key)}" data-holds="{word}"><td class="num">{i}</td><td>{_e(claim.statement)}</td><td>{_e(claim.source)}</td>'
            f"<td>{_e(claim.paper_value)}</td><td>{_e(claim.measured)}</td><td class=\"{cls}\">{word}</td>"
            f'<td data-seeds="{_e(seeds_text(claim))}">{_e(seeds_text(claim))}</td><td class="num">{_e(value_text(claim))}</td>'
            f"<td>{_e(_models_text(claim))}</td><td>{_e(claim.data)}</td>"
            f'<td><a href="#sec-{_e(section.key)}">{_e(section.title)}</a></td></tr>'
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _figure(section: Section, figure: Figure) -> str:
    div_id = figure_div_id(section.key, figure.key)
    body = figure.fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, post_script=_MARK_RENDERED,
        config={"responsive": True, "displaylogo": False},
    )
    return (
        f'<figure id="figure-{_e(section.key)}-{_e(figure.key)}" data-figure="{_e(div_id)}">{body}'
        f"<figcaption><b>{_e(figure.title)}.</b> {_e(figure.caption)}</figcaption></figure>"
    )


def _view(section: Section, view: View) -> str:
    div_id = view_div_id(section.key, view.key)
    return (f'<figure id="figure-{div_id}" data-view="{_e(div_id)}">{view.view.fragment(div_id)}'
            f"<figcaption><b>{_e(view.title)}.</b> {_e(view.caption)}</figcaption></figure>")


def _table(table: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    caption = f"<p class=\"notes\">{_e(table.caption)}</p>" if table.caption else ""
    return f'<h3 id="table-{_e(table.key)}">{_e(table.title)}</h3>{caption}<table data-table="{_e(table.key)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(section: Section, error: str | None) -> str:
    out = [f'<section id="sec-{_e(section.key)}" data-section="{_e(section.key)}">', f"<h2>{_e(section.title)}</h2>"]
    if error is not None:
        out.append(f'<div class="error" data-error="1"><p>{section.intro}</p><pre>{_e(error)}</pre></div>')
    else:
        out.append(f"<p>{section.intro}</p>")
    if section.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in section.notes) + "</ul>")
    for figure in section.figures:
        out.append(_figure(section, figure))
    for view in section.views:
        out.append(_view(section, view))
    for table in section.tables:
        out.append(_table(table))
    if section.claims:
        claims = "".join(
            f'<li class="{_holds(c.holds)[1]}">{_e(c.statement)}: measured {_e(c.measured)} (holds: {_holds(c.holds)[0]}'
            f'{"" if c.seeds_tested is None else f"; seeds held: {seeds_text(c)}"})</li>' for c in section.claims
        )
        out.append(f'<p>Claims checked here (all in the <a href="#claims">claims table</a>):</p><ul>{claims}</ul>')
    out.append("</section>")
    return "\n".join(out)


def _record(record: dict) -> str:
    out = ['<h2 id="run-record">Run record</h2>']
    simple = {k: v for k, v in record.items() if not isinstance(v, (dict, list))}
    if simple:
        out.append("<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in simple.items()) + "</table>")
    timings = record.get("timings_s")
    if isinstance(timings, dict) and timings:
        out.append("<h3>Time per stage</h3><table><thead><tr><th>stage</th><th>seconds</th></tr></thead><tbody>")
        out.extend(f"<tr><td>{_e(k)}</td><td class=\"num\">{float(v):.1f}</td></tr>" for k, v in timings.items())
        out.append("</tbody></table>")
    out.append(_models_table(record.get("models")))
    for key, value in record.items():
        if key == "timings_s" or not isinstance(value, (dict, list)):
            continue
        out.append(f"<h3>{_e(key)}</h3><pre>{_e(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>")
    return "\n".join(out)


#: The run record's per-model settings shown as table columns (the full configs follow as JSON).
MODEL_COLUMNS = ("data", "repeat_fraction", "model_seed", "train_seed", "steps", "batch_size", "n_ctx", "tokens", "lr", "warmup_steps",
                 "min_lr_ratio", "weight_decay", "n_layers", "d_model", "n_heads", "d_vocab", "positional")


def _models_table(models: Any) -> str:
    """Every model's training settings, one row per model (every seed), from the run record's ``models``."""
    if not isinstance(models, dict) or not models:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in ("model", *MODEL_COLUMNS))
    rows = []
    for label, entry in models.items():
        cells = [_cell(entry.get(c, "")) for c in MODEL_COLUMNS] if isinstance(entry, dict) and "error" not in entry else [
            f'<td colspan="{len(MODEL_COLUMNS)}">{_e(entry)}</td>']
        rows.append(f'<tr data-model="{_e(label)}"><td>{_e(label)}</td>{"".join(cells)}</tr>')
    return (f'<h3 id="models">Models and every training setting</h3><table id="models-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render(sections: Sequence[Section], record: dict, *, plotly_js: str, title: str, errors: dict[str, str] | None = None) -> str:
    """The report as one HTML string. ``errors[section.key]`` (a traceback) marks a section as failed."""
    errors = errors or {}
    contents = "".join(
        f'<li><a href="#sec-{_e(s.key)}">{_e(s.title)}</a>{" <b>(failed)</b>" if s.key in errors else ""}</li>' for s in sections
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_ERROR_SCRIPT}</script>",
        f'<script type="text/javascript" id="plotly-js">{plotly_js}</script>',
        head_html() if any(s.views for s in sections) else "",
        "</head><body>",
        '<div id="report-errors"></div>',
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Generated {_e(record.get("created", ""))} by <code>{_e(record.get("command", "circuits report"))}</code>'
        f'{" in quick mode (tiny models: numbers are a smoke test, not a reproduction)" if record.get("quick") else ""}.</p>',
        '<nav><h2 id="contents">Contents</h2><ol>',
        '<li><a href="#claims">Claims</a></li>',
        contents,
        '<li><a href="#run-record">Run record</a></li>',
        "</ol></nav>",
        _claims_table(sections, record),
        *(_section(s, errors.get(s.key)) for s in sections),
        _record(record),
        "</body></html>",
    ]
    return "\n".join(parts)
