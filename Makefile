# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
# `make run` installs only what the program needs; `make test` adds the development
# tools (pytest, ruff, mypy, matplotlib, ...), each with its own stamp.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test lint bench bench-quick clean cluster

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

# '.[dev]' includes the runtime, so it also satisfies `make run`.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(RUN_STAMP) $(CLUSTER_STAMP)

# Another port or database: make run PORT=8890 DB=/path/to/chat.db (no DB: the
# default database, docs/storage.md).
PORT ?= 8888
DB ?=
run: $(RUN_STAMP)
	$(BIN)/chatroom serve --host 127.0.0.1 --port $(PORT)$(if $(DB), --db '$(DB)')

# Three nodes of one chat on this machine (docs/cluster.md): PostgreSQL and Redis
# must be running (.ci/services starts them). Ctrl-C stops all three. Each can be
# changed: make cluster CLUSTER_DBNAME=mine CLUSTER_NAME=mine CLUSTER_PORTS="9001 9002"
CLUSTER_STAMP := $(VENV)/.installed-cluster
CLUSTER_ADMIN ?= postgresql://postgres@127.0.0.1/test
CLUSTER_DBNAME ?= chatroom
CLUSTER_DB ?= postgresql+psycopg://postgres@127.0.0.1/$(CLUSTER_DBNAME)
CLUSTER_BROKER ?= redis://127.0.0.1:6379/0
CLUSTER_NAME ?= chatroom
CLUSTER_PORTS ?= 8001 8002 8003
NODE := $(BIN)/chatroom serve --host 127.0.0.1 --db $(CLUSTER_DB) --cluster $(CLUSTER_BROKER) \
	--cluster-name $(CLUSTER_NAME)

$(CLUSTER_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cluster]'
	touch $@ $(RUN_STAMP)

cluster: $(CLUSTER_STAMP)
	@psql "$(CLUSTER_ADMIN)" -Atc "SELECT 1 FROM pg_database WHERE datname = '$(CLUSTER_DBNAME)'" \
		| grep -q 1 || psql "$(CLUSTER_ADMIN)" -qc 'CREATE DATABASE "$(CLUSTER_DBNAME)"'
	@set -- $(CLUSTER_PORTS); pids=; \
	trap 'kill $$pids 2>/dev/null; wait' EXIT INT TERM; \
	while [ $$# -gt 1 ]; do $(NODE) --port $$1 -q & pids="$$pids $$!"; shift; done; \
	$(NODE) --port $$1

lint: $(DEV_STAMP)
	$(BIN)/ruff check chatroom storage bench tests testkit alembic setup.py
	$(BIN)/mypy --strict chatroom storage testkit
	$(BIN)/lint-imports

# The suite on two workers (pytest-xdist): most of its time is spent waiting on
# servers, clients and timers, not computing. Plain `pytest` still runs it serially.
# .ci/services first: the suite talks to a real PostgreSQL, Redis and NATS, and
# fails rather than skips without them; it starts any that is not running.
test: lint
	.ci/services
	$(BIN)/pytest -n 2
	CHATROOM_BENCH_QUICK=1 $(BIN)/pytest bench -q --benchmark-disable -p no:randomly

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
