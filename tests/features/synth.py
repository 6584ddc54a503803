"""Synthetic research data for feature and strategy tests: a correlated multi-asset market with trends, funding and
feeds, built with numpy only (no simulator, no shared data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def make_bars(n: int = 2000, seed: int = 0, freq: str = "1h", start: str = "2024-01-01",
              drift_regimes: bool = True, price0: float = 100.0) -> pd.DataFrame:
    """One OHLCV frame: GARCH-ish volatility, optional persistent drift regimes, consistent high/low."""
    rng = np.random.default_rng(seed)
    sigma = np.empty(n)
    s = 0.01
    shocks = rng.standard_normal(n)
    for i in range(n):
        s = np.sqrt(1e-6 + 0.05 * (s * shocks[i - 1]) ** 2 + 0.93 * s * s) if i else s
        sigma[i] = s
    drift = np.zeros(n)
    if drift_regimes:
        regime_len = max(50, n // 20)
        levels = rng.choice([-1.0, 0.0, 1.0], size=n // regime_len + 1) * 0.15
        drift = np.repeat(levels, regime_len)[:n] * sigma
    r = drift + sigma * shocks
    close = price0 * np.exp(np.cumsum(r))
    open_ = np.r_[price0, close[:-1]] * np.exp(rng.normal(0, 1e-4, n))
    wick = np.abs(rng.normal(0, 1, (2, n))) * sigma * 0.6
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(3, 0.5, n) * (1 + 20 * np.abs(r))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="ts")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def make_panel(n: int = 2000, seed: int = 0, freq: str = "1h", with_carry: bool = True,
               with_feeds: bool = True) -> dict[str, pd.DataFrame]:
    """Three symbols sharing a market factor, with 8h funding, basis and daily feeds published a day late."""
    rng = np.random.default_rng(seed + 1000)
    market = make_bars(n, seed, freq)
    panel = {}
    step = pd.Timedelta(freq)
    for k, symbol in enumerate(SYMBOLS):
        own = make_bars(n, seed + 10 * (k + 1), freq, price0=100.0 * (k + 1))
        mixed = np.log(own["close"] / own["close"].iloc[0]) * 0.6 + np.log(market["close"] / 100.0) * 0.8
        close = 100.0 * (k + 1) * np.exp(mixed.to_numpy())
        scale = close / own["close"].to_numpy()
        frame = own.mul(scale, axis=0)
        frame["volume"] = own["volume"]
        if with_carry:
            ret_8h = np.log(frame["close"]).diff(int(pd.Timedelta("8h") / step) or 1)
            funding = (0.0001 + 0.002 * ret_8h.fillna(0.0) + rng.normal(0, 5e-5, n))
            every = max(1, int(pd.Timedelta("8h") / step))
            held = pd.Series(np.where(np.arange(n) % every == 0, funding, np.nan), index=frame.index).ffill()
            frame["funding_rate"] = held.shift(1)
            frame["basis"] = held.shift(1) * 3 + rng.normal(0, 1e-4, n)
        if with_feeds:
            daily = max(1, int(pd.Timedelta("1D") / step))
            walk = np.cumsum(rng.normal(0, 0.3, n // daily + 2))
            fg = np.clip(50 + 15 * np.tanh(np.cumsum(rng.normal(0, 0.2, n // daily + 2))), 0, 100)
            frame["risk_index"] = np.repeat(walk, daily)[:n]
            frame["fear_greed"] = np.repeat(fg, daily)[:n]
            frame["netflow"] = np.repeat(rng.normal(0, 1000, n // daily + 2), daily)[:n]
            # published one day late: shift by a day of bars
            for col in ("risk_index", "fear_greed", "netflow"):
                frame[col] = frame[col].shift(daily)
        panel[symbol] = frame
    return panel


def truncate_panel(panel: dict[str, pd.DataFrame], n: int) -> dict[str, pd.DataFrame]:
    """The first n bars of every frame (a history as it looked at bar n-1)."""
    return {s: f.iloc[:n].copy() for s, f in panel.items()}
