# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/chatroom serve --host 127.0.0.1 --port 8888

lint: $(STAMP)
	$(BIN)/ruff check chatroom storage bench tests alembic
	$(BIN)/mypy --strict chatroom storage

test: lint
	$(BIN)/pytest
	CHATROOM_BENCH_QUICK=1 $(BIN)/pytest bench -q --benchmark-disable -p no:randomly

bench: $(STAMP)
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks
