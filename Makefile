# One command sets up and runs the daemon, one runs the tests (see README.md).
VENV ?= .venv
CONFIG ?= etc/quickstart.yaml
PYTEST_ARGS ?=

.PHONY: setup setup-dev run test lint
setup:
	VENV=$(VENV) scripts/setup

setup-dev:
	VENV=$(VENV) scripts/setup --dev

run: setup
	$(VENV)/bin/bshmd run -c $(CONFIG)

test: setup-dev
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check .
