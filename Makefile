# aml-jupyterhub: one entry point for developers and CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help venv test test-unit test-contract bench clean

help:
	@echo "make venv    - create $(VENV) with the package (editable) and the test tools"
	@echo "make test    - run the whole test suite (unit, contract, integration, end-to-end)"
	@echo "make bench   - print performance figures"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python spawner/pyproject.toml
	$(BIN)/pip install -q -e './spawner[emulator,test]'
	touch $@

# configurable-http-proxy, the hub's proxy (node, from npm)
CHP := $(VENV)/chp/node_modules/.bin/configurable-http-proxy
$(CHP):
	npm install --prefix $(VENV)/chp --no-audit --no-fund --loglevel=error configurable-http-proxy@4

venv: $(VENV)/.installed $(CHP)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

test-unit: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

test-contract: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/contract

bench: venv
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache
