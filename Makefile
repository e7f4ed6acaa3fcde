# Two commands for a fresh machine: `make run` and `make test`. Both set up .venv first
# and do nothing more when it is already up to date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: run dev test test-fast lint bench setup setup-dev clean-venv

run: $(VENV)/.installed
	$(BIN)/streamlit run app.py

# Editing pages: reload on save (the server watches files, which costs CPU while tabs are open).
dev: $(VENV)/.installed
	$(BIN)/streamlit run app.py --server.fileWatcherType auto --server.runOnSave true

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# Everything but the slow, browser and PostgreSQL tests: the inner loop while coding.
test-fast: $(VENV)/.installed-dev
	$(BIN)/pytest -m "not slow and not e2e and not postgres" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Protolab needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

# torch first, so the project's own `torch>=...` is already satisfied by the right build.
$(VENV)/.installed: $(BIN)/python pyproject.toml scripts/install_torch.py
	$(BIN)/python scripts/install_torch.py
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) -e ".[dev]"
	touch $@

clean-venv:
	rm -rf $(VENV)
