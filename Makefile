# The README's two commands: `make demo` and `make test`. Both work on a fresh clone
# with only Python and make: they create .venv, put uv (pinned) into it with pip, and
# install exactly what locks/dev.txt says. `make lock` refreshes the lock.
PYTHON ?= python3
UV_VERSION := 0.13.9
LOCK := locks/dev.txt
BENCH_LOCK := locks/bench.txt
# What the lock covers: every extra we ship plus the test and lint tools.
EXTRAS := all,dev
PYTEST := -m pytest -q -p no:cacheprovider
# Installed packages get their bytecode written at install time, as pip does: without it
# (uv's default) every fresh interpreter, Ray worker and subprocess in the suite compiles
# each module it imports again, several times slower (import openai: 1.5 s against 0.7).
export UV_COMPILE_BYTECODE := 1
# Our own packages (installed editable) too, for the same reason.
COMPILE_OURS = -m compileall -q siliconvision langchain_siliconvision llama_index_siliconvision

VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-lowest test-latest lock bench clean

# A venv with uv in it: $(call new_venv,DIR)
define new_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
endef

$(PY):
	$(call new_venv,$(VENV))

# The demo needs only the core, at the locked versions; a venv that `make test`
# already set up will do.
$(VENV)/.installed-base: pyproject.toml $(LOCK) | $(PY)
	$(UV) pip install --quiet --python $(PY) -c $(LOCK) -e .
	touch $@

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(UV) pip install --quiet --python $(PY) -r $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

DEMO_STAMP := $(if $(wildcard $(STAMP)),$(STAMP),$(VENV)/.installed-base)

demo: $(DEMO_STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(PY) $(COMPILE_OURS) > /dev/null
	$(PY) $(PYTEST)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The declared ranges, at both ends: the lowest versions pyproject allows for our
# direct dependencies (their own dependencies at their newest), and today's newest
# releases of everything. Each gets a fresh venv, the suite and mypy.
test-lowest:
	rm -rf .venv-lowest
	$(call new_venv,.venv-lowest)
	.venv-lowest/bin/uv pip install --quiet --python .venv-lowest/bin/python \
		--resolution lowest-direct -e '.[$(EXTRAS)]'
	.venv-lowest/bin/python $(COMPILE_OURS) > /dev/null
	.venv-lowest/bin/python $(PYTEST)
	.venv-lowest/bin/python -m mypy

test-latest:
	rm -rf .venv-latest
	$(call new_venv,.venv-latest)
	.venv-latest/bin/uv pip install --quiet --python .venv-latest/bin/python \
		--refresh --upgrade -e '.[$(EXTRAS)]'
	.venv-latest/bin/python $(COMPILE_OURS) > /dev/null
	.venv-latest/bin/python $(PYTEST)
	.venv-latest/bin/python -m mypy

# Refresh the locks to today's newest releases (then run make test, lint,
# test-lowest and commit locks/). Universal: one lock for every Python and platform
# pyproject allows.
lock: | $(PY)
	$(UV) pip compile --quiet --universal --python-version 3.10 --upgrade --refresh --generate-hashes \
		pyproject.toml --extra all --extra dev -o $(LOCK)
	$(UV) pip compile --quiet --universal --python-version 3.10 --upgrade --generate-hashes \
		pyproject.toml --extra all --extra bench -o $(BENCH_LOCK)

# Benchmarks against the raw SDK and the peers, in their own venv (peers pin openai<3).
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_PY):
	$(call new_venv,$(BENCH_VENV))

$(BENCH_STAMP): pyproject.toml $(BENCH_LOCK) | $(BENCH_PY)
	$(BENCH_VENV)/bin/uv pip install --quiet --python $(BENCH_PY) -r $(BENCH_LOCK)
	$(BENCH_VENV)/bin/uv pip install --quiet --python $(BENCH_PY) --no-deps -e .
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_PY) $(COMPILE_OURS) > /dev/null
	$(BENCH_PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-lowest .venv-latest
