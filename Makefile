# Keel: `make run` serves, `make test` tests. Both set everything up on a machine
# that has only Python 3.11+ (uv is installed into .tools/ from PyPI, then the locked
# dependencies into .venv/).

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast lint fmt typecheck bench bench-queue bench-documents bench-live openapi clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra otel --extra sentry --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/keel serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -x -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.jobs_bench
	$(BIN)/python -m bench.documents_bench
	$(BIN)/python -m bench.live_bench

bench-queue: install
	$(BIN)/python -m bench.jobs_bench $(BENCH_QUEUE_ARGS)

bench-documents: install
	$(BIN)/python -m bench.documents_bench $(BENCH_DOCUMENTS_ARGS)

bench-live: install
	$(BIN)/python -m bench.live_bench $(BENCH_LIVE_ARGS)

openapi: install
	@$(BIN)/keel openapi

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
