"""engine.backtest.kernels: the AOT extension when it is built from the current sources, numba's JIT otherwise (stale
hash, QUANTDESK_KERNEL=jit, or arguments outside the compiled signatures), with identical results either way; and a
backtest process that uses the extension never imports numba."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import aot, kernels
from engine.backtest.engine import changed_bars
from tests.backtest.kernel_impls import IMPLEMENTATIONS, aot_extension, implementation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QUANTDESK_KERNEL", raising=False)
    kernels.reset()
    yield
    kernels.reset()  # runs before monkeypatch undoes its patches: the next use re-resolves with the real ones


def _jit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls that reach the JIT functions."""
    calls: list[int] = []
    real = kernels._jit

    def spy() -> Any:
        calls.append(1)
        return real()

    monkeypatch.setattr(kernels, "_jit", spy)
    return calls


def _market(n: int = 300, k: int = 2, seed: int = 3) -> tuple[list[Any], list[Any]]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, k)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, (n, k)))
    high, low = np.maximum(open_, close) * 1.004, np.minimum(open_, close) * 0.996
    targets = np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0], (n // 10, k)), 10, axis=0)
    sigma, vol_ref = np.full((n, k), 0.01), rng.uniform(10.0, 100.0, (n, k))
    funding = np.where(rng.random((n, k)) < 0.1, 0.0001, 0.0)
    stop_frac = np.abs(rng.normal(0.01, 0.005, (n, k)))  # per-trade (vol-scaled) stops; take-profit: the scalar
    arrays = [targets, changed_bars(targets), open_, open_, high, low, close, sigma, vol_ref, funding, stop_frac,
              np.zeros((0, k))]
    scalars = [10_000.0, 0.0005, 0.0002, 0.0001, 0.1, 0.02, 0.03, 5, True, 8 * n * k + 4]
    return arrays, scalars


def _same(a: tuple, b: tuple) -> None:
    assert len(a) == len(b) == 4
    for x, y in zip(a[:3], b[:3]):
        assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
    assert a[3] == b[3]


def test_extension_is_built_when_a_compiler_exists() -> None:
    """CI runs `make test`, which builds the extension first: with a C compiler it must exist and be current."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    assert aot.output_path().exists(), f"{aot.output_path()} was not built"
    assert kernels.fresh_aot() is not None, "the extension is stale: its hash does not match the sources"


def test_fresh_extension_is_used_and_agrees_with_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = aot_extension()
    assert kernels.implementation() == "aot" and kernels.aot_module() is mod
    calls = _jit_calls(monkeypatch)
    arrays, scalars = _market()
    got = kernels.simulate_kernel(*arrays, *scalars)
    stats = kernels.curve_stats(got[0])
    bare = kernels.bare_loop(np.ascontiguousarray(arrays[0][:, 0]), arrays[2][:, 0].copy(), arrays[6][:, 0].copy(),
                             10_000.0, 0.001)
    assert calls == []  # nothing reached the JIT path
    jit = implementation("jit")
    want = jit.simulate_kernel(*arrays, *scalars)
    _same(got, want)
    assert len(got[1]) > 10 and len(got[2]) > 5  # a case with real trading in it
    assert stats == jit.curve_stats(want[0])
    assert np.array_equal(bare, jit.bare_loop(np.ascontiguousarray(arrays[0][:, 0]), arrays[2][:, 0].copy(),
                                              arrays[6][:, 0].copy(), 10_000.0, 0.001))


def test_stale_hash_falls_back_to_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    """An extension built from other sources (simulated: the expected hash differs) is not used."""
    mod = aot_extension()
    monkeypatch.setattr(kernels, "source_hash", lambda: int(mod.source_hash()) ^ 1)
    kernels.reset()
    assert kernels.fresh_aot() is None and kernels.implementation() == "jit"
    calls = _jit_calls(monkeypatch)
    arrays, scalars = _market()
    _same(kernels.simulate_kernel(*arrays, *scalars), mod.simulate_kernel(*arrays, *scalars))
    assert kernels.curve_stats(np.array([1.0, 1.1, 0.9])) == mod.curve_stats(np.array([1.0, 1.1, 0.9]))
    assert len(calls) == 2


def test_env_forces_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    aot_extension()
    monkeypatch.setenv("QUANTDESK_KERNEL", "jit")
    kernels.reset()
    assert kernels.implementation() == "jit"


def test_arguments_outside_the_signatures_go_to_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other dtypes, an int change-flag array or a float bar count are not fed to the extension (no unchecked
    reinterpretation of memory); non-contiguous float64 views are copied and stay on the AOT path."""
    aot_extension()
    calls = _jit_calls(monkeypatch)
    arrays, scalars = _market()
    want = implementation("jit").simulate_kernel(*arrays, *scalars)
    # F-ordered and strided views: converted, AOT, same result
    wide = [np.asfortranarray(a) if a.ndim == 2 else a for a in arrays]
    wide[6] = np.repeat(arrays[6], 2, axis=1)[:, ::2]
    assert not wide[6].flags.c_contiguous
    _same(kernels.simulate_kernel(*wide, *scalars), want)
    assert calls == []
    # an int64 change-flag array, numpy scalars and a float max_bars: JIT
    _same(kernels.simulate_kernel(arrays[0], arrays[1].astype(np.int64), *arrays[2:], *scalars), want)
    assert len(calls) == 1
    floaty = list(scalars)
    floaty[7] = 5.0
    _same(kernels.simulate_kernel(*arrays, *floaty), want)
    assert len(calls) == 2
    f32 = implementation("jit").curve_stats(np.array([1.0, 1.5, 1.2], dtype=np.float32))
    assert kernels.curve_stats(np.array([1.0, 1.5, 1.2], dtype=np.float32)) == f32
    assert len(calls) == 3
    numpy_scalars = [np.float64(x) if isinstance(x, float) else x for x in scalars]
    numpy_scalars[7], numpy_scalars[9] = np.int64(scalars[7]), np.int32(scalars[9])
    _same(kernels.simulate_kernel(*arrays, *numpy_scalars), want)
    assert len(calls) == 3  # numpy scalars of the right kind are converted, not sent to the JIT


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.01, 1e6), min_size=2, max_size=200))
def test_curve_stats_aot_equals_jit(values: list[float]) -> None:
    arr = np.array(values)
    assert implementation("aot").curve_stats(arr) == implementation("jit").curve_stats(arr)


def _curve_stats_per_bar(values: np.ndarray) -> tuple:
    """The statistics as first written: each return divided out twice, the drawdown divided at every bar."""
    n = len(values) - 1
    total = 0.0
    for i in range(n):
        total += values[i + 1] / values[i] - 1.0
    mean = total / n
    m2 = m3 = m4 = down2 = 0.0
    peak, max_dd, run, longest = values[0], 0.0, 0, 0
    for i in range(n):
        r = values[i + 1] / values[i] - 1.0
        d = r - mean
        m2 += d * d
        m3 += d * d * d
        m4 += d * d * (d * d)
        down2 += min(r, 0.0) * min(r, 0.0)
        v = values[i + 1]
        peak = max(peak, v)
        max_dd = min(max_dd, v / peak - 1.0)
        run = run + 1 if v < peak else 0
        longest = max(longest, run)
    return mean, m2 / n, m3 / n, m4 / n, down2 / n, max_dd, longest


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_curve_stats_equal_the_per_bar_reference(impl: str) -> None:
    """One division per return and per peak gives exactly the per-bar divisions' statistics: random curves with
    flat stretches, repeated peaks, a curve that only falls and one that only rises."""
    rng = np.random.default_rng(11)
    curves = [np.array([1.0, 2.0]), np.array([3.0, 2.0, 1.0]), np.array([1.0, 1.0, 2.0, 2.0, 1.5, 2.0, 2.5]),
              np.repeat([1.0, 1.2, 0.9, 1.2, 1.3, 1.3, 0.7], 4)]
    for seed in range(12):
        steps = rng.normal(0, 0.01, 3000) * (rng.random(3000) < 0.4)
        curves.append(1e5 * np.cumprod(1.0 + steps))
    mod = implementation(impl)
    for values in curves:
        assert tuple(mod.curve_stats(values)) == _curve_stats_per_bar(values)


_CHILD = """
import json, sys
import numpy as np, pandas as pd
from engine.backtest import kernels
from engine.backtest.engine import run_backtest
from tests.support.strategies.sma_cross import SmaCross
from engine.config import BacktestConfig
rng = np.random.default_rng(0)
close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000)))
idx = pd.date_range("2024-01-01", periods=3000, freq="1h", tz="UTC", name="ts")
frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
                     index=idx)
r = run_backtest(SmaCross(fast=10, slow=50), {"BTC/USDT": frame}, BacktestConfig())
print(json.dumps({"impl": kernels.implementation(), "numba": "numba" in sys.modules,
                  "llvmlite": "llvmlite" in sys.modules, "trades": len(r.trades),
                  "final": float(r.equity.iloc[-1]), "sharpe": r.metrics["sharpe"]}))
"""


def _child(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "QUANTDESK_KERNEL"}
    env.update(env_extra, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_backtest_process_with_the_extension_never_imports_numba() -> None:
    aot_extension()
    got = _child({})
    assert got["impl"] == "aot"
    assert got["numba"] is False and got["llvmlite"] is False
    assert got["trades"] > 10
    jit = _child({"QUANTDESK_KERNEL": "jit"})  # the same backtest on the JIT kernel: numba loaded, same numbers
    assert jit["impl"] == "jit" and jit["numba"] is True
    assert (jit["trades"], jit["final"], jit["sharpe"]) == (got["trades"], got["final"], got["sharpe"])
