# Two commands for a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    the whole stack on this machine, on embedded defaults
#   make test   every test (installs what the tests need first)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= .edgetwin

.PHONY: run test lint bench tools clean help

help:
	@echo "make run    start the single-machine stack (embedded broker, twin, sample devices)"
	@echo "make test   install test tools and run lint, import rules and all tests"
	@echo "make bench  run the benchmarks in bench/ (figures in bench/README.md)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgetwin needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) || { echo "python venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	@touch $@

tools:
	@bash scripts/install-test-tools.sh

run: $(STAMP)
	$(BIN)/edgetwin up --data-dir $(DATA) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy edgemqtt twin mappers edgetwin cloud-sync/cloud_sync api-server/api_server node-agent/node_agent

test: $(STAMP) tools lint
	$(BIN)/python -m pytest

bench: $(STAMP) tools
	$(BIN)/python bench/twin_throughput.py
	$(BIN)/python bench/mqtt_client_cpu.py
	$(BIN)/python bench/store_writes.py
	$(BIN)/python bench/modbus_poll.py
	$(BIN)/python bench/opcua_poll.py
	$(BIN)/python bench/apiserver.py
	$(BIN)/python bench/dmi.py
	$(BIN)/python bench/pods.py
	$(BIN)/python bench/sync.py

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .ruff_cache .mypy_cache
