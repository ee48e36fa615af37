"""Static PNG export of the report's figures (kaleido 1.x, which drives a Chromium found on ``PATH``).

The HTML never depends on it: when kaleido or a browser is missing, or the export fails, the
step is skipped with the reason, which the run record and the log show.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from circuits.atomic import TMP_PREFIX, remove_stale_temporaries

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


# Runs in a child process (plotly + kaleido only, no torch): a hung browser is killed at the deadline.
_WORKER = """
import json, sys
import plotly.io as pio
spec = json.load(open(sys.argv[1]))
figs = [pio.from_json(open(job[0]).read()) for job in spec["jobs"]]
pio.write_images(figs, [job[1] for job in spec["jobs"]], format="png", scale=spec["scale"])
"""


def export_pngs(figures: list[tuple[str, object]], folder: Path, *, scale: float = 1.5, timeout_s: float | None = None) -> PngExport:
    """Write each ``(stem, plotly figure)`` to ``folder/<stem>.png`` in one kaleido session; never raises.

    The export runs in a child process killed after ``timeout_s`` (default: 60 s plus 30 s a
    figure, or ``$CIRCUITS_PNG_TIMEOUT``); whatever finished by then is kept.
    """
    result = PngExport()
    if not figures:
        return result
    try:
        import kaleido  # noqa: F401
    except ImportError as error:
        result.skipped = f"kaleido is not installed ({error}); pip install kaleido"
        return result
    if find_browser() is None and not _kaleido_has_chrome():
        result.skipped = "no Chromium/Chrome found for kaleido (install Debian's chromium package, or run `plotly_get_chrome`)"
        return result
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    if timeout_s is None:
        timeout_s = float(os.environ.get("CIRCUITS_PNG_TIMEOUT", 60 + 30 * len(figures)))
    # kaleido writes in place: write to temporary names, then rename, so a PNG is complete or absent.
    paths = [folder / f"{stem}.png" for stem, _ in figures]
    tmp = [folder / f"{TMP_PREFIX}{stem}.png" for stem, _ in figures]
    with tempfile.TemporaryDirectory(prefix="circuits-png-") as work:
        jobs = []
        for (stem, fig), t in zip(figures, tmp):
            spec = Path(work) / f"{stem}.json"
            spec.write_text(fig.to_json(), encoding="utf-8")
            jobs.append([str(spec), str(t)])
        (Path(work) / "jobs.json").write_text(json.dumps({"jobs": jobs, "scale": scale}), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(Path(work) / "jobs.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            _, err = proc.communicate(timeout=timeout_s)
            if proc.returncode != 0:
                lines = [line for line in err.strip().splitlines() if line.strip()]
                result.skipped = f"kaleido failed: {lines[-1] if lines else f'exit status {proc.returncode}'}"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            result.skipped = f"kaleido did not finish within {timeout_s:.0f} s (set CIRCUITS_PNG_TIMEOUT to allow more)"
    for t, p in zip(tmp, paths):
        if t.is_file() and t.stat().st_size > 0:
            t.replace(p)
            result.written.append(str(p))
        else:
            t.unlink(missing_ok=True)
    if len(result.written) < len(paths) and result.skipped is None:
        result.skipped = f"kaleido wrote {len(result.written)} of {len(paths)} images"
    return result


def _kaleido_has_chrome() -> bool:
    try:
        from choreographer.browsers.chromium import Chromium

        return bool(Chromium.find_browser())
    except Exception:  # noqa: BLE001
        return False
