"""The quick report in a real browser: headless Chromium (Debian's ``chromium``) loads it offline, draws every figure, raises no JavaScript error.

The report records errors in a banner (``#report-errors``) and marks each figure's ``<div>`` with
``data-rendered="1"`` once plotly has drawn it; ``--dump-dom`` prints the DOM after the scripts
ran, which we parse. A screenshot is saved in the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from report_helpers import figure_div_ids, quick_report  # noqa: F401 (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium package)")

TIMEOUT_S = float(os.environ.get("CIRCUITS_BROWSER_TIMEOUT", 600))  # a loaded 2-core machine needs minutes to start Chromium and parse 4 MB of plotly.js


def _chromium(url: str, profile, *extra: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
        f"--user-data-dir={profile}", "--virtual-time-budget=30000", *extra, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


def test_report_renders_in_chromium_without_errors(quick_report, tmp_path):
    html_path = quick_report.run.html
    expected = figure_div_ids(html_path.read_text(encoding="utf-8"))
    assert expected
    url = html_path.resolve().as_uri()
    dump = _chromium(url, tmp_path / "profile-dom", "--dump-dom")
    assert dump.returncode == 0, dump.stderr[-3000:]
    dom = dump.stdout
    # every figure drawn: its div is marked and holds plotly's SVG
    rendered = set(re.findall(r'<div id="([^"]+)" class="[^"]*plotly-graph-div[^"]*"[^>]*data-rendered="1"', dom))
    rendered |= set(re.findall(r'<div[^>]*data-rendered="1"[^>]*id="([^"]+)"', dom))
    missing = [i for i in expected if i not in rendered]
    assert not missing, f"figures not rendered: {missing}"
    assert dom.count('class="main-svg"') >= len(expected)
    # no JavaScript errors: the banner stayed empty and the console logged no uncaught error
    banner = re.search(r'<div id="report-errors"[^>]*>(.*?)</div>', dom, re.S)
    assert banner is not None and banner.group(1).strip() == "", banner.group(1) if banner else dom[:500]
    console_errors = [line for line in dump.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert not console_errors, console_errors

    shot = tmp_path / "report.png"
    result = _chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    assert result.returncode == 0, result.stderr[-3000:]
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
