"""Static PNG export of the report's figures (kaleido 1.x, which drives a Chromium found on ``PATH``).

The HTML never depends on it: when kaleido or a browser is missing, or the export fails, the
step is skipped with the reason, which the run record and the log show.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from circuits.atomic import remove_stale_temporaries

__all__ = ["PngExport", "export_pngs", "find_browser"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@dataclass
class PngExport:
    written: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing (or not everything) was written

    def describe(self) -> str:
        return f"{len(self.written)} PNG files" + (f"; skipped: {self.skipped}" if self.skipped else "")


def find_browser() -> str | None:
    """A Chromium-family executable on ``PATH`` (kaleido needs one), or ``None``."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def export_pngs(figures: list[tuple[str, object]], folder: Path, *, scale: float = 1.5) -> PngExport:
    """Write each ``(stem, plotly figure)`` to ``folder/<stem>.png`` in one kaleido session; never raises."""
    result = PngExport()
    if not figures:
        return result
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError as error:
        result.skipped = f"kaleido is not installed ({error}); pip install kaleido"
        return result
    if find_browser() is None and not _kaleido_has_chrome():
        result.skipped = "no Chromium/Chrome found for kaleido (install Debian's chromium package, or run `plotly_get_chrome`)"
        return result
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    # kaleido writes in place: write to temporary names, then rename, so a PNG is complete or absent.
    paths = [folder / f"{stem}.png" for stem, _ in figures]
    tmp = [folder / f".tmp-{stem}.png" for stem, _ in figures]
    try:
        pio.write_images([fig for _, fig in figures], [str(p) for p in tmp], format="png", scale=scale)
    except Exception as error:  # noqa: BLE001 - any failure skips the optional step, with the reason
        for p in tmp:
            p.unlink(missing_ok=True)
        result.skipped = f"kaleido failed: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return result
    for t, p in zip(tmp, paths):
        if t.is_file():
            t.replace(p)
            result.written.append(str(p))
    if len(result.written) < len(paths):
        result.skipped = f"kaleido wrote {len(result.written)} of {len(paths)} images"
    return result


def _kaleido_has_chrome() -> bool:
    try:
        from choreographer.browsers.chromium import Chromium

        return bool(Chromium.find_browser())
    except Exception:  # noqa: BLE001
        return False
