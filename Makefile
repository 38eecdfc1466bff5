# One command sets up and runs the daemon, one runs the tests (see README.md).
VENV ?= .venv
CONFIG ?= etc/quickstart.yaml
PYTEST_ARGS ?=

.PHONY: setup setup-dev run test test-fast lint
setup:
	VENV=$(VENV) scripts/setup

setup-dev:
	VENV=$(VENV) scripts/setup --dev

run: setup
	$(VENV)/bin/bshmd run -c $(CONFIG)

test: setup-dev
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Everything but the tests marked slow (daemons, survival, browser, anything over ~5 s).
test-fast: setup-dev
	$(VENV)/bin/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check .
