# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := data/demo

.PHONY: demo test lint typecheck bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,pdf,dask]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/stepanalytics synth $(DEMO) --patients 300 --clinics 6 --seed 2026 --force
	$(BIN)/stepanalytics validate $(DEMO)
	$(BIN)/stepanalytics summary $(DEMO)
	$(BIN)/stepanalytics report qi --data $(DEMO) --out reports

lint: $(STAMP)
	$(BIN)/ruff check stepanalytics tests benchmarks
	$(BIN)/ruff format --check stepanalytics tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q
	# The Examples of every docstring run as written (numpydoc examples are tests too).
	$(BIN)/python -m pytest -q --doctest-modules stepanalytics -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
