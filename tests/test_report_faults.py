"""Faults during the report: kill -9 ``circuits report`` at seeded points while its workers train, then rerun.

Checks that no training worker outlives its parent, and that the rerun (resuming the half-trained
models and reusing finished results) exits 0 with a valid, complete page.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc (Linux)")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def report_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "circuits", "report", "--quick", "--only", "one_layer", "--seeds", "1", "--workers", "2",
            "--out", str(folder / "out"), "--runs", str(folder / "runs"), "--cache-dir", str(folder / "cache"), "--no-png", "--no-progress"]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_killed_report_leaves_no_worker_and_reruns_to_a_valid_page(tmp_path, seed):
    rng = random.Random(seed)
    proc = subprocess.Popen(report_command(tmp_path), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:  # wait until the workers train, then kill at a seeded moment
            if "processes of" in line:
                break
        else:
            pytest.fail("the report never started its training workers")
        time.sleep(rng.uniform(0.5, 3.0))
        workers = descendants(proc.pid)
        assert workers, "no worker process found to check"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if alive(p)], "training workers outlived the killed report"

    rerun = subprocess.run(report_command(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.rstrip().endswith("</html>")
    assert 'id="sec-one_layer"' in html and 'id="claims-table"' in html and "did not produce results" not in html
