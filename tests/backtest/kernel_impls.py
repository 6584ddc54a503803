"""The kernel implementations under test: numba's JIT functions and the ahead-of-time compiled extension."""

from __future__ import annotations

import shutil
from types import ModuleType

import pytest

from engine.backtest import aot, kernels

IMPLEMENTATIONS = ("jit", "aot")


def aot_extension() -> ModuleType:
    """The built, current AOT extension; fails when missing and a C compiler exists (`make test` builds it)."""
    # skips only on a machine without a C compiler, where the extension cannot be built
    mod = kernels.fresh_aot()
    if mod is not None:
        return mod
    if shutil.which("cc"):
        state = "stale (built from other sources)" if aot.output_path().exists() else "missing"
        pytest.fail(f"{aot.output_path().name} is {state} although a C compiler is available: `make test` builds it "
                    "(or run `python -m engine.backtest.aot`)")
    pytest.skip("no C compiler here: the AOT kernel cannot be built (the JIT kernel is still tested)")


def implementation(name: str) -> ModuleType:
    """The module whose simulate_kernel / curve_stats / bare_loop the test calls directly (no dispatch)."""
    if name == "aot":
        return aot_extension()
    from engine.backtest import curve, kernel

    ns = ModuleType("jit")
    ns.simulate_kernel, ns.bare_loop, ns.curve_stats = kernel.simulate_kernel, kernel.bare_loop, curve.curve_stats
    return ns
