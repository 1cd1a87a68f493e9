# Mussel: the two set-up commands are `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test check faults bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/mussel serve --data ./data

test: $(STAMP)
	$(BIN)/pytest -q --durations=30

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

faults: $(STAMP)
	MUSSEL_CRASH_CYCLES=200 MUSSEL_HTTP_CRASH_CYCLES=100 MUSSEL_BULK_CRASH_CYCLES=100 MUSSEL_EXPIRE_CRASH_CYCLES=50 $(BIN)/pytest -q -s --timeout=3600 tests/faults

bench: $(STAMP)
	@command -v wrk >/dev/null && command -v redis-benchmark >/dev/null || \
		(apt-get update -q >/dev/null && apt-get install -y -q wrk redis-tools >/dev/null)
	$(BIN)/python -m bench.run $(BENCH_SECONDS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
