"""`quantdesk strategy check NAME`: the strategy contract checked on a short synthetic panel before any backtest.

Checks, each reported pass/fail with what was wrong: the class loads with its defaults and every parameter space is
valid; `signals` returns a DataFrame on the panel's index with one column per symbol; values are finite and in
{-1, 0, +1}; its `weights` finite and in [-1, 1] (fractional weights are allowed: 0.5 = half a position); its
`stops()` None or a valid Stops spec; the warm-up is flat; no lookahead (signals recomputed on truncated
histories are unchanged); and its speed per 10,000 bars, so a slow strategy is seen before it slows an optimiser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.backtest.exposure import uses_weights
from engine.backtest.lookahead import check_lookahead
from engine.clock import timeframe_ms
from engine.strategy.base import method_location


@dataclass(frozen=True)
class ContractCheck:
    """One check's verdict and its detail line."""

    name: str
    ok: bool
    detail: str


def synthetic_panel(n_bars: int, timeframe: str, symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
                    seed: int = 7) -> dict[str, pd.DataFrame]:
    """Seeded random-walk bars with volatility regimes and a little funding, enough to exercise a strategy."""
    freq = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    idx = pd.date_range("2024-01-01", periods=n_bars, freq=freq, tz="UTC", name="ts")
    panel = {}
    for i, sym in enumerate(symbols):
        rng = np.random.default_rng(seed + i)
        vol = 0.006 * np.exp(np.repeat(rng.normal(0, 0.4, n_bars // 200 + 1), 200)[:n_bars])
        close = 100.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 1, n_bars) * vol))
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 1, n_bars)) * vol * close
        panel[sym] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                                   "low": np.minimum(open_, close) - spread, "close": close,
                                   "volume": rng.gamma(2.0, 50.0, n_bars),
                                   "funding_rate": rng.normal(1e-4, 1e-4, n_bars)}, index=idx)
    return panel


def _shape(sig: object, panel: Mapping[str, pd.DataFrame]) -> str | None:
    if not isinstance(sig, pd.DataFrame):
        return f"signals returned {type(sig).__name__}, expected a pandas DataFrame"
    index = next(iter(panel.values())).index
    if not sig.index.equals(index):
        return f"index has {len(sig.index)} rows, expected the panel's {len(index)} bar timestamps"
    if list(sig.columns) != list(panel):
        return f"columns {list(sig.columns)}, expected one per symbol {list(panel)}"
    return None


def _finite(frame: pd.DataFrame) -> str | None:
    values = frame.to_numpy(dtype="float64")
    if np.isnan(values).any():
        return f"{int(np.isnan(values).sum())} NaN values (use 0 for flat)"
    if not np.isfinite(values).all():
        return "infinite values"
    return None


def _values(sig: pd.DataFrame) -> str | None:
    problem = _finite(sig)
    if problem is not None:
        return problem
    values = sig.to_numpy(dtype="float64")
    if not set(np.unique(values)) <= {-1.0, 0.0, 1.0}:
        bad = sorted(set(np.unique(values)) - {-1.0, 0.0, 1.0})[:5]
        return f"signal values outside {{-1, 0, +1}}: {bad}"
    return None


def _in_range(weights: pd.DataFrame) -> str | None:
    values = weights.to_numpy(dtype="float64")
    bad = np.abs(values) > 1.0
    if bad.any():
        return f"{int(bad.sum())} weights outside [-1, 1], e.g. {float(values[bad][0]):.4g}"
    return None


def _weights_summary(weights: pd.DataFrame) -> str:
    values = np.abs(weights.to_numpy(dtype="float64"))
    frac = float(((values > 0) & (values < 1)).mean())
    return (f"max |w| = {float(values.max()):.3g}; fractional on {frac:.0%} of bars"
            if frac else f"max |w| = {float(values.max()):.3g}; whole positions only (the signals)")


def _stops_check(strategy: object) -> ContractCheck:
    """stops() returns None or a valid engine.strategy.stops.Stops."""
    from engine.strategy.stops import Stops

    try:
        spec = strategy.stops()  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001
        return ContractCheck("stops: None or a Stops spec", False, f"{type(exc).__name__}: {exc} "
                             f"({method_location(strategy, 'stops')})")
    if spec is None:
        return ContractCheck("stops: None or a Stops spec", True, "none declared")
    if not isinstance(spec, Stops):
        return ContractCheck("stops: None or a Stops spec", False, f"returned {type(spec).__name__} "
                             f"({method_location(strategy, 'stops')})")
    what = ", ".join(f"{k} {v:g}{'' if spec.scale == 'fixed' else ' x ' + spec.scale.upper() + f'({spec.window})'}"
                     for k, v in (("stop-loss", spec.stop_loss), ("take-profit", spec.take_profit)) if v is not None)
    return ContractCheck("stops: None or a Stops spec", True, what or "a spec with nothing set")


def check_strategy(strategy_cls: type, n_bars: int = 3_000) -> list[ContractCheck]:
    """Run every contract check on `strategy_cls` with its default parameters; returns the verdicts in order."""
    checks: list[ContractCheck] = []
    try:
        strategy = strategy_cls()
        space = strategy_cls.param_space()
    except Exception as exc:  # noqa: BLE001 - a user's class: report, never crash the check
        return [ContractCheck("loads with its defaults", False, f"{type(exc).__name__}: {exc}")]
    checks.append(ContractCheck("loads with its defaults", True, f"{len(space)} searched parameters: "
                                + ", ".join(f"{k} in [{s.low:g}, {s.high:g}]" if s.kind != "choice"
                                            else f"{k} in {list(s.choices)}" for k, s in space.items())))
    warm = int(getattr(strategy, "warmup_bars", 0) or 0)
    n = max(n_bars, 4 * warm + 200)
    panel = synthetic_panel(n, strategy.default_timeframe)
    try:
        t0 = time.perf_counter()
        sig = strategy.signals(panel)
        elapsed = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001
        checks.append(ContractCheck("signals run", False, f"{type(exc).__name__}: {exc}"))
        return checks
    problem = _shape(sig, panel)
    checks.append(ContractCheck("shape: index = bars, columns = symbols", problem is None, problem or
                                f"{sig.shape[0]} bars x {sig.shape[1]} symbols"))
    if problem is not None:
        return checks
    problem = _values(sig)
    checks.append(ContractCheck("values finite and in {-1, 0, +1}", problem is None, problem or
                                f"long {float((sig > 0).to_numpy().mean()):.0%}, short "
                                f"{float((sig < 0).to_numpy().mean()):.0%} of bars"))
    try:
        weights = strategy.weights(panel)
        problem = _shape(weights, panel) or _finite(weights) or _in_range(weights)
    except Exception as exc:  # noqa: BLE001
        weights, problem = None, f"{type(exc).__name__}: {exc}"
    if problem is not None:
        problem = f"{problem} ({method_location(strategy, 'weights')})"
    checks.append(ContractCheck("weights finite, in [-1, 1] (fractional allowed)", problem is None, problem or
                                _weights_summary(weights)))
    checks.append(_stops_check(strategy))
    if warm > 1:  # a bar with `warm` bars of history (row warm-1) may already trade
        early = sig.iloc[: min(warm - 1, len(sig))]
        flat = bool((early == 0).all().all())
        checks.append(ContractCheck("flat during the warm-up", flat, f"first {warm - 1} bars" if flat
                                    else f"{int((early != 0).to_numpy().sum())} non-zero values before bar {warm}"))
    look = check_lookahead(strategy.signals, panel, full_signals=sig, warmup_bars=warm)
    checks.append(ContractCheck("no lookahead (truncated histories)", look.ok, look.summary()))
    if uses_weights(strategy) and weights is not None and problem is None:  # the weights are what trades
        look = check_lookahead(strategy.weights, panel, full_signals=weights, warmup_bars=warm)
        checks.append(ContractCheck("no lookahead in weights (truncated histories)", look.ok, look.summary()))
    per_10k = elapsed * 10_000 / n
    checks.append(ContractCheck("speed (reported, not judged)", True, f"{per_10k * 1000:.1f} ms per 10,000 bars x "
                                f"{len(panel)} symbols (a 1,000-trial sweep calls signals ~1,000 times per window)"))
    return checks
