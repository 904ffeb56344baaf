# Two commands matter: `make run` (the desktop app) and `make test` (the whole suite).
# Both set up everything first; `make setup` is idempotent and fast once done.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test lint bench package package-test clean-venv

setup: $(STAMP)
	$(BIN)/conversimple-platform prepare-models

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/conversimple-studio

demo: setup
	$(BIN)/conversimple-platform demo

test: setup
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check platform_core agent_sdk app tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean-venv:
	rm -rf $(VENV)
