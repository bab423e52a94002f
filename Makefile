PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint typecheck mutation mutation-one bench bench-peers bench-insights docs docs-gen clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/opsloom up --db sqlite:///opsloom.db --app examples.workflows:app

# The incident-response runbook end to end on loopback: real Prometheus and Alertmanager,
# local stand-ins of the SaaS tools (docs/howto/runbooks.md); from a wheel: opsloom demo.
demo: $(STAMP)
	$(BIN)/opsloom demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Mutation testing of the core modules ([tool.mutmut] in pyproject.toml); slow: run it alone.
# One module with only its own tests (docs/explanation/testing.md):
#   make mutation-one MODULE=src/opsloom/triggers/sources/github.py \
#       TESTS=tests/triggers/test_sources_github.py
mutation: $(STAMP)
	$(BIN)/mutmut run $(ARGS); $(BIN)/mutmut results

mutation-one: $(STAMP)
	$(BIN)/python tools/mutation.py $(MODULE) $(TESTS)

# e.g. make bench ARGS='--store postgresql://postgres@127.0.0.1:5432/test'
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)
	$(BIN)/python bench/dsl.py

bench-peers: $(STAMP)
	$(BIN)/python bench/run.py --peers $(ARGS)

bench-insights: $(STAMP)
	$(BIN)/python bench/insights.py $(ARGS)

# Reference pages generated from the code (CLI, settings, HTTP API, webhook sources).
docs-gen: $(STAMP)
	$(BIN)/python docs/gen.py

# The site in docs/_build/html; fails on a stale generated page, a broken link or a warning.
docs: $(STAMP)
	$(BIN)/python docs/gen.py --check
	$(BIN)/sphinx-build -q -W --keep-going -n -E -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache docs/_build
