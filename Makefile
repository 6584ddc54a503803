# The two commands a new user needs: `make run` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean pyc

# The ahead-of-time compiled backtest kernel (engine/backtest/aot.py): a backtest process that uses it never imports
# numba (~160 MB resident). Named with the interpreter's extension suffix (the venv's, else $(PYTHON)'s, which creates
# it). A failed build (e.g. no C compiler) only warns: the engine then falls back to numba's JIT kernel.
EXT_SUFFIX := $(shell { test -x $(BIN)/python && $(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'; } 2>/dev/null || $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
AOT_SO := engine/backtest/_kernel_aot$(EXT_SUFFIX)
AOT_SRC := $(addprefix engine/backtest/,layout.py kernel.py curve.py aot.py kernels.py)
# the indicator helpers for strategy authors (engine/features/fast.py), compiled by the same command
FAST_SO := engine/features/_fast_aot$(EXT_SUFFIX)
FAST_SRC := engine/features/fast_kernels.py engine/features/fast.py engine/backtest/aot.py

# uv installs the same wheels from PyPI as pip, about ten times faster (13 s against ~3 min for a fresh .venv here),
# which keeps `make test` on a new CI machine well inside its budget; pip remains the fallback. --compile-bytecode
# writes .pyc files at install: this machine sets PYTHONDONTWRITEBYTECODE=1, so without them every test subprocess
# recompiled pandas, sklearn and apprise's ~190 plugins on import (seconds each under load).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]' || $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(AOT_SO): $(AOT_SRC) $(STAMP)
	@$(BIN)/python -m engine.backtest.aot --only kernel || echo "WARNING: could not build $(AOT_SO) (see above); backtests fall back to numba's JIT kernel (more memory, same results)" >&2

$(FAST_SO): $(FAST_SRC) $(STAMP)
	@$(BIN)/python -m engine.backtest.aot --only fast || echo "WARNING: could not build $(FAST_SO) (see above); indicator helpers fall back to numba's JIT (same results)" >&2

# The project's own bytecode. With PYTHONDONTWRITEBYTECODE=1 (set on this machine) Python never writes it, so every
# engine and CLI subprocess the tests start (hundreds) recompiled the ~150 engine modules it imports: ~0.3 s CPU each.
# compileall writes it whatever that variable says and skips files whose .pyc is current.
pyc:
	@$(BIN)/python -m compileall -q -j 0 engine console strategies tests

run: $(STAMP) $(AOT_SO) $(FAST_SO) pyc
	$(BIN)/quantdesk

test: $(STAMP) $(AOT_SO) $(FAST_SO) pyc
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --durations=15

bench: $(STAMP) $(AOT_SO) $(FAST_SO)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev,bench]'
	benchmarks/peers/setup.sh
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis engine/backtest/_kernel_aot*.so engine/backtest/.aot-build-* engine/features/_fast_aot*.so engine/features/.aot-build-*
