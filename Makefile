# Two commands for a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    the whole stack on this machine, on embedded defaults
#   make test   every test (installs what the tests need first)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test
DOCSSTAMP := $(VENV)/.installed-docs
DOCS_PORT ?= 8000
DATA   ?= .edgetwin
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's progress, one line per package, without its noise.
PIP_PROGRESS := sed -un -E '/^(Collecting|Installing collected|Successfully installed)/s/^/  /p'

.PHONY: run test lint bench tools docs clean help

help:
	@echo "make run    start the whole stack on this machine (cloud, one edge node, simulated devices)"
	@echo "make test   install test tools and run lint, import rules and all tests"
	@echo "make bench  run the benchmarks in bench/ (figures in bench/README.md)"
	@echo "make docs   serve the documentation site on http://127.0.0.1:$(DOCS_PORT) while you edit docs/"

# What running needs (make run), then what testing adds (make test).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edgetwin needs Python 3.11 or newer")'
	@echo "creating the virtual environment $(VENV) and installing edgetwin into it (about a minute the first time)"
	@$(PYTHON) -m venv $(VENV) || { echo "python venv failed: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --progress-bar off -e '.[all,kubectl]' | $(PIP_PROGRESS)
	@rm -f $(TESTSTAMP) $(DOCSSTAMP)
	@touch $@

$(TESTSTAMP): $(STAMP)
	@echo "installing the test tools into $(VENV)"
	@$(BIN)/python -m pip install --progress-bar off -e '.[all,test]' | $(PIP_PROGRESS)
	@touch $@

$(DOCSSTAMP): $(STAMP)
	@echo "installing the documentation tools (MkDocs, Material) into $(VENV)"
	@$(BIN)/python -m pip install --progress-bar off -e '.[all,docs]' | $(PIP_PROGRESS)
	@touch $@

tools:
	@bash scripts/install-test-tools.sh

# Ctrl-C is for edgetwin, which stops everything and says goodbye; the shell ignores it so that
# make does not report an interrupted recipe.
run: $(STAMP)
	@trap 'true' INT; $(BIN)/edgetwin up --data-dir $(DATA) $(ARGS)

# The site from docs/ and mkdocs.yml, rebuilt as you save; make test builds it with --strict.
docs: $(DOCSSTAMP)
	@trap 'true' INT; NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

lint: $(TESTSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy edgemqtt twin mappers edgetwin cloud-sync/cloud_sync api-server/api_server node-agent/node_agent

test: $(TESTSTAMP) tools lint
	$(BIN)/python -m pytest

bench: $(TESTSTAMP) tools
	$(BIN)/python bench/twin_throughput.py
	$(BIN)/python bench/mqtt_client_cpu.py
	$(BIN)/python bench/store_writes.py
	$(BIN)/python bench/modbus_poll.py
	$(BIN)/python bench/opcua_poll.py
	$(BIN)/python bench/apiserver.py
	$(BIN)/python bench/kube_transport.py
	$(BIN)/python bench/dmi.py
	$(BIN)/python bench/pods.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sync.py

clean:
	rm -rf $(VENV) $(DATA) site .pytest_cache .ruff_cache .mypy_cache
