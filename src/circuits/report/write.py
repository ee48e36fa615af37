"""Write the report folder: ``report.html`` (atomically) and ``png/<section>-<key>.png``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from circuits.atomic import atomic_write_text, remove_stale_temporaries
from circuits.experiments.base import Section
from circuits.report.export import PngExport, export_pngs
from circuits.report.html import render

__all__ = ["WrittenReport", "write_report"]

REPORT_FILE = "report.html"
TITLE = "Transformer circuits, reproduced on this machine"


@dataclass
class WrittenReport:
    html: Path
    png: PngExport
    timings: dict[str, float]


def _stderr(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def write_report(
    sections: Sequence[Section],
    out_dir: str | Path,
    record: dict,
    *,
    errors: dict[str, str] | None = None,
    png: bool = True,
    title: str = TITLE,
    log: Callable[[str], None] = _stderr,
) -> WrittenReport:
    """Write ``out_dir/report.html`` (one self-contained file) and, unless ``png=False``, ``out_dir/png/*.png``.

    ``record`` (the run record: versions, seeds, commit, corpus fingerprint, ``timings_s``) is
    shown at the end; the PNG export's outcome and the time of both steps are added to it.
    ``errors[section.key]`` marks failed sections. The HTML is written to a temporary file and
    renamed, so an interrupted write leaves the previous report (or none), never half of one.
    """
    import plotly.offline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    record = dict(record)
    timings = record.setdefault("timings_s", {})
    own: dict[str, float] = {}
    if png:
        figures = [(f"{section.key}-{figure.key}", figure.fig) for section in sections for figure in section.figures]
        log(f"exporting {len(figures)} figures to {out_dir / 'png'} (kaleido)")
        t0 = time.perf_counter()
        export = export_pngs(figures, out_dir / "png")
        own["png export"] = time.perf_counter() - t0
        log(f"PNG export: {export.describe()} ({own['png export']:.1f} s)")
    else:
        export = PngExport(skipped="disabled (--no-png)")
    record["png_export"] = export.describe()
    t0 = time.perf_counter()
    text = render(sections, record | {"timings_s": {**timings, **own}}, plotly_js=plotly.offline.get_plotlyjs(), title=title, errors=errors)
    path = out_dir / REPORT_FILE
    atomic_write_text(path, text)
    path.chmod(0o644)  # a report is for reading (the atomic writer's temporary file is private)
    own["write html"] = time.perf_counter() - t0
    timings.update(own)
    return WrittenReport(html=path, png=export, timings=own)
