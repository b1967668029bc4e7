# musegansynth: `make demo` and `make test` each do all set-up on a fresh machine, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
# Elsewhere, a CPU-only build: make TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
SYSTEM_PACKAGES := fluidsynth fluid-soundfont-gm timgm6mb-soundfont
BROWSER_PACKAGES := chromium chromium-driver
OUT ?= out/demo

.PHONY: setup system-deps browser-deps demo test test-slow bench clean help

help:
	@echo "make demo       set up and generate a song with the shipped weights into $(OUT)"
	@echo "make test       set up and run the tests"
	@echo "make test-slow  also run the slow tests"
	@echo "make bench      run every benchmark with its default options"

# The virtual environment: torch first (a CPU build; a bare 'torch' requirement would pull a
# multi-GB CUDA build), then the package, editable, with its dev extra.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH_SPEC) $(TORCH_INDEX)
	$(PIP) install -q -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed system-deps

system-deps:
	@bash scripts/system_deps.sh $(SYSTEM_PACKAGES)

browser-deps:
	@bash scripts/system_deps.sh $(BROWSER_PACKAGES)

demo: setup
	$(VENV)/bin/musegansynth generate --out $(OUT)
	@echo "Song written to $(OUT)/ (open $(OUT)/index.html)"

test: setup browser-deps
	$(VENV)/bin/pytest -q

test-slow: setup browser-deps
	$(VENV)/bin/pytest -q -m ""

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
