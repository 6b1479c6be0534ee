# opdoc: `make docs` builds the knowledge base and the site, `make test` runs every gate.
# Both set up a project-local .venv on a fresh machine first; nothing is installed globally
# except Debian's chromium for the browser tests (scripts/install-browser.sh).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU build 2.13.0; an unpinned torch would pull several GB of CUDA packages.
export NO_MKDOCS_2_WARNING := 1
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: docs build site test gate serve bench lint check check-upstream setup setup-test setup-upstream clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip

$(VENV)/.docs-ready: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[site]'
	@touch $@

$(VENV)/.test-ready: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[site,check,test,independent]'
	@touch $@

node_modules/.ready: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The upstream check's own environment (.venv-upstream: the vendor's transformers 4.46.3).
setup-upstream:
	bash scripts/setup-upstream.sh

setup: $(VENV)/.docs-ready node_modules/.ready
setup-test: $(VENV)/.test-ready node_modules/.ready
	bash scripts/install-browser.sh

# The knowledge base (site/*.md, committed) and the browsable site (build/site, ignored).
build: $(VENV)/.docs-ready
	$(BIN)/opdoc build

site: build node_modules/.ready
	$(BIN)/mkdocs build --strict

docs: site

serve: site
	$(BIN)/mkdocs serve

test: setup-test setup-upstream
	bash scripts/gate.sh

lint: $(VENV)/.docs-ready
	$(BIN)/opdoc lint

check: $(VENV)/.test-ready
	$(BIN)/opdoc check

# The vendor's own classes against the formulas: OPDOC_UPSTREAM, or ../shared/upstream/deepseek-ocr.
check-upstream: setup-upstream
	bash scripts/check-upstream.sh

bench: $(VENV)/.docs-ready
	$(BIN)/python scripts/bench.py

clean:
	rm -rf build test-artifacts .pytest_cache
