# Two commands for a fresh machine: `make run` and `make test`. Both set up .venv first
# and do nothing more when it is already up to date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# --no-compile: pip would byte-compile every installed module (torch, transformers, mlflow ...) up front, most of
# which nothing imports; Python compiles what is imported on first use instead.
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q --no-compile
PYTEST_ARGS ?=
# Two pytest processes (pytest-xdist), whole files to each (module fixtures such as a browser stay in one process):
# many tests wait on servers, daemons and workers, so two share two cores well. PYTEST_WORKERS=0 runs in one.
# --no-loadscope-reorder: files go out longest first, in the order tests/conftest.py sorts them (tests/durations.json).
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
# Each pytest process, and every worker, server and CLI it starts, gets its share of the cores for torch's and
# OpenBLAS's threads, unless the caller set OMP_NUM_THREADS. With their default of a thread per core in each, four
# and more OpenMP threads spun on two cores: tests/test_search.py took 103 s instead of 78 s beside a busy neighbour.
SHARE := $(if $(filter 0,$(PYTEST_WORKERS)),1,$(PYTEST_WORKERS))
THREADS := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(( ($$(nproc) + $(SHARE) - 1) / $(SHARE) ))}
# Python must be allowed to cache bytecode. Some shells (CI's among them) export PYTHONDONTWRITEBYTECODE=1; with the
# --no-compile install above, every worker, daemon and CLI subprocess the suite starts then compiled torch,
# transformers and sklearn from source again (57 s of a 70 s TF-IDF worker run). An empty value means unset.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run dev test test-fast durations lint bench setup setup-dev clean-venv

run: $(VENV)/.installed
	$(BIN)/streamlit run app.py

# Editing pages: reload on save (the server watches files, which costs CPU while tabs are open).
dev: $(VENV)/.installed
	$(BIN)/streamlit run app.py --server.fileWatcherType auto --server.runOnSave true

test: $(VENV)/.installed-dev
	$(THREADS) $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# Everything but the slow, browser and PostgreSQL tests: the inner loop while coding.
test-fast: $(VENV)/.installed-dev
	$(THREADS) $(BIN)/pytest $(XDIST) -m "not slow and not e2e and not postgres" $(PYTEST_ARGS)

# After adding or reshaping slow tests: the whole suite, recording each file's seconds for the order above.
durations: $(VENV)/.installed-dev
	$(THREADS) $(BIN)/pytest $(XDIST) --record-durations $(PYTEST_ARGS)

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

# One pip pass for the project and its dev extra (a second pass would re-check every installed package).
$(VENV)/.installed-dev: $(BIN)/python pyproject.toml scripts/install_torch.py
	$(BIN)/python scripts/install_torch.py
	$(PIP) -e ".[dev]"
	touch $(VENV)/.installed $@

clean-venv:
	rm -rf $(VENV)
