"""Fixtures for backtest tests: deterministic synthetic OHLCV panels (no network, no shared data)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import pytest


def synthetic_bars(n: int, seed: int, start: float = 100.0, freq: str = "1h", vol: float = 0.01,
                   t0: str = "2024-01-01") -> pd.DataFrame:
    """A random-walk OHLCV frame with consistent high/low, indexed by UTC bar open time."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(t0, periods=n, freq=freq, tz="UTC", name="ts")
    close = start * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.r_[start, close[:-1]] * np.exp(rng.normal(0, vol / 10, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol / 3, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol / 3, n)))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.uniform(100, 1000, n)}, index=idx)


@pytest.fixture
def make_panel() -> Callable[..., dict[str, pd.DataFrame]]:
    """Factory: make_panel(n, symbols=("BTC/USDT",), freq="1h") -> panel of synthetic bars."""
    def _make(n: int = 2000, symbols: tuple[str, ...] = ("BTC/USDT",), freq: str = "1h",
              seed: int = 0) -> dict[str, pd.DataFrame]:
        return {s: synthetic_bars(n, seed + i, 100.0 * (i + 1), freq) for i, s in enumerate(symbols)}
    return _make
