# Two entry points, both self-contained on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint venv

venv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

demo: venv
	$(PIP) -e '.[cluster]'
	$(BIN)/relukit study --force

test: venv
	$(PIP) -e '.[test]'
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2
