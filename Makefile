# Every target installs what it needs from the project's own files (pyproject.toml,
# package.json + package-lock.json). A second run reinstalls nothing that is there.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint bench contracts drizzle clean install tools image image-test

$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,devchain,embedded]'
	touch $@

# Not `npm ci`: anvil's per-platform binaries are optional dependencies and the lock
# can only list the one the registry served here, which `npm ci` rejects as out of sync.
# `npm install --no-save` installs exactly the locked versions and leaves the lock alone.
$(NODE_STAMP): package.json package-lock.json
	npm install --no-save --no-audit --no-fund
	touch $@

install: $(PY_STAMP) $(NODE_STAMP) tools

# promtool (Debian's prometheus) for the alert-rule tests; a no-op where it is present,
# and it never fails the build where it cannot be installed (not root, no apt).
tools:
	-@bash deploy/tools.sh

demo: install
	$(BIN)/python -m indexer.devchain.demo

lint: $(PY_STAMP)
	$(BIN)/ruff check indexer tests
	$(BIN)/ruff format --check indexer tests
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

contracts: $(NODE_STAMP)
	node indexer/devchain/compile.mjs

# The backend's Drizzle schema (sql/drizzle/schema.ts, relations.ts), pulled from a fresh
# database migrated by the project's runner; tests/test_drizzle.py fails when it is stale.
drizzle: $(PY_STAMP) $(NODE_STAMP)
	$(BIN)/python -m tests.drizzle

# The container image (podman + debootstrap here; slow, not part of `make test`).
image:
	bash deploy/tools.sh image
	bash deploy/image.sh build

image-test: image install
	bash deploy/image.sh test

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .bench .demo .pgdata
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
