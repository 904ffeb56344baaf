# Two commands matter: `make run` (the desktop app) and `make test` (the whole suite).
# Both set up everything first; `make setup` is idempotent and fast once done.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run demo test lint bench package package-test clean-venv

# --install: a default model whose package cannot be a pyproject dependency (Smart Turn's, pipecat-ai,
# installed --no-deps as resources/models.json pins it, for one ONNX file) is installed here.
setup: $(STAMP)
	$(BIN)/conversimple-platform prepare-models --install

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/conversimple-studio

demo: setup
	$(BIN)/conversimple-platform demo

# The suite also checks one optional model, SmolLM2 (98 MB), installed as its manifest pins it.
test: setup lint
	$(BIN)/conversimple-platform prepare-models --install smollm2-135m-instruct
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check platform_core agent_sdk app tests bench
	$(BIN)/ruff format --check platform_core agent_sdk app tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean-venv:
	rm -rf $(VENV)

# QA's installer: a one-folder PyInstaller build with the engines and default models, archived.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PACKAGE := dist/conversimple-studio-$(VERSION)-linux-x86_64.tar.gz

package: setup
	$(BIN)/pyinstaller --version 2>/dev/null | grep -qx 6.22.3 || $(BIN)/pip install -q pyinstaller==6.22.3
	$(BIN)/pyinstaller --noconfirm --clean pyinstaller.spec
	tar -C dist -czf $(PACKAGE).part conversimple-studio && mv $(PACKAGE).part $(PACKAGE)
	@du -sh dist/conversimple-studio $(PACKAGE)

# Runs the archive's self-test in a clean environment (builds it first if it is missing).
package-test:
	test -f $(PACKAGE) || $(MAKE) package
	packaging/package_test.sh $(PACKAGE) artifacts/package-self-test
