# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GUIDE_CLIENT := tests/guide_client
NODE_STAMP := $(GUIDE_CLIENT)/node_modules/.installed

.PHONY: run test lint check install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The integration guide's TypeScript SDK client, which a test uses to drive shipcord.
$(NODE_STAMP): $(GUIDE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(GUIDE_CLIENT) && npm ci --no-audit --no-fund --ignore-scripts && touch node_modules/.installed; \
	else \
		echo "npm not found: the guide-client test will be skipped"; \
	fi

install: $(STAMP)

run: $(STAMP)
	$(BIN)/shipcord run

check: $(STAMP)
	$(BIN)/shipcord check

test: $(STAMP) $(NODE_STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
