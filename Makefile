# The README's two commands: `make demo` and `make test`. Both work on a fresh clone
# with only Python and pip: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $@

# The demo needs only the core; a venv that `make test` already set up will do.
DEMO_STAMP := $(if $(wildcard $(STAMP)),$(STAMP),$(VENV)/.installed-base)

demo: $(DEMO_STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Benchmarks against the raw SDK and the peers, in their own venv (peers pin openai<3).
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_PY):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip

$(BENCH_STAMP): pyproject.toml | $(BENCH_PY)
	$(BENCH_PY) -m pip install --quiet -e '.[all,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(BENCH_VENV)
