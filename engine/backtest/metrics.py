"""Performance metrics of an equity curve and its trades, annualised for 24/7 markets (365 days x bars per day)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.backtest.kernels import curve_stats
from engine.backtest.stats import probabilistic_sharpe

DAY_MS = 86_400_000


def periods_per_year(timeframe_ms: int) -> float:
    """Bars in a year of a 24/7 market: 365 days x bars per day."""
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms: must be > 0, got {timeframe_ms}")
    return 365.0 * DAY_MS / timeframe_ms


def infer_timeframe_ms(index: pd.DatetimeIndex) -> int:
    """The bar length of an index: the most common spacing between consecutive bars, in ms."""
    if len(index) < 2:
        raise ValueError("index: needs at least 2 bars to infer the timeframe")
    diffs = np.diff(index.asi8[: min(len(index), 10_000)])
    unit = {"ns": 1_000_000, "us": 1_000, "ms": 1, "s": 0.001}.get(getattr(index, "unit", "ns"), 1_000_000)
    values, counts = np.unique(diffs, return_counts=True)
    step = int(values[np.argmax(counts)] / unit)
    if step <= 0:
        raise ValueError("index: bars are not increasing")
    return step


def drawdown(equity: pd.Series) -> pd.Series:
    """Drawdown from the running peak, as a fraction (<= 0)."""
    peak = equity.cummax()
    return equity / peak - 1.0


def compute_metrics(equity: pd.Series, trades: pd.DataFrame | None, periods_per_year: float,
                    gross_exposure: pd.Series | None = None, traded_notional: float | None = None) -> dict:
    """Total return, CAGR, vol, Sharpe/Sortino, Calmar, drawdown, trade stats, turnover, exposure and PSR."""
    if not isinstance(equity, pd.Series) or len(equity) < 2:
        raise ValueError("equity: expected a pandas Series with at least 2 points")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year: must be > 0, got {periods_per_year}")
    values = np.ascontiguousarray(equity.to_numpy(dtype="float64"))
    value_sum = float(np.sum(values))  # also the average equity below: np.mean is this sum over the count
    if not np.isfinite(value_sum) and not np.isfinite(values).all():  # one reduction in the common case
        raise ValueError("equity: contains NaN or infinite values")
    n = len(values) - 1
    years = n / periods_per_year
    total = values[-1] / values[0] - 1.0
    cagr = (values[-1] / values[0]) ** (1.0 / years) - 1.0 if years > 0 and values[-1] > 0 else -1.0
    mean, m2, m3, m4, down2, max_dd, dd_bars = curve_stats(values)
    std = math.sqrt(m2 * n / (n - 1)) if n > 1 else 0.0
    skew = m3 / m2 ** 1.5 if m2 > 0 else 0.0
    kurt = m4 / (m2 * m2) if m2 > 0 else 3.0
    ann = math.sqrt(periods_per_year)
    sharpe_pp = mean / std if std > 0 else 0.0
    dd_dev = math.sqrt(down2)
    sortino = mean / dd_dev * ann if dd_dev > 0 else 0.0
    out = {
        "start": str(equity.index[0]), "end": str(equity.index[-1]), "bars": int(len(values)),
        "initial_equity": float(values[0]), "final_equity": float(values[-1]),
        "total_return": float(total), "cagr": float(cagr), "volatility": float(std * ann),
        "sharpe": float(sharpe_pp * ann), "sortino": float(sortino),
        "max_drawdown": float(max_dd), "max_drawdown_bars": int(dd_bars),
        "calmar": float(cagr / -max_dd) if max_dd < 0 else 0.0,
        "sharpe_per_bar": float(sharpe_pp), "skew": float(skew), "kurtosis": float(kurt), "n_obs": int(n),
        # NaN (undefined), never a made-up 0.5, with too few returns or a non-positive variance factor
        "psr": float(probabilistic_sharpe(sharpe_pp, 0.0, n, skew, kurt)) if n > 2 else float("nan"),
        "periods_per_year": float(periods_per_year),
    }
    out.update(trade_metrics(trades))
    if gross_exposure is not None:
        gross = gross_exposure.to_numpy(dtype="float64")
        out["exposure"] = float(np.mean(gross > 0)) if len(gross) else 0.0
        out["avg_gross_leverage"] = float(np.mean(gross / values)) if len(gross) else 0.0
    if traded_notional is not None:
        avg_eq = value_sum / len(values)
        out["turnover"] = float(traded_notional / avg_eq / years) if years > 0 and avg_eq > 0 else 0.0
    return out


def trade_metrics(trades: pd.DataFrame | None) -> dict:
    """Trade count, hit rate, profit factor, average trade PnL and holding time."""
    if trades is None or len(trades) == 0:
        return trade_stats(np.zeros(0), np.zeros(0))
    pnl = trades["pnl"].to_numpy(dtype="float64")
    return trade_stats(pnl, trades["bars"].to_numpy(dtype="float64") if "bars" in trades else np.zeros(len(pnl)))


def trade_stats(pnl: np.ndarray, bars_held: np.ndarray) -> dict:
    """trade_metrics from the trades' PnL and bars held as arrays (the backtest's records, no frame to build)."""
    if len(pnl) == 0:
        return {"trades": 0, "hit_rate": 0.0, "profit_factor": 0.0, "avg_trade_pnl": 0.0, "avg_bars_held": 0.0}
    wins = pnl[pnl > 0].sum()
    losses = -pnl[pnl < 0].sum()
    pf = float(wins / losses) if losses > 0 else (math.inf if wins > 0 else 0.0)
    held = np.asarray(bars_held, dtype="float64")
    return {"trades": int(len(pnl)), "hit_rate": float(np.mean(pnl > 0)), "profit_factor": pf,
            "avg_trade_pnl": float(pnl.mean()), "avg_bars_held": float(held.mean())}


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Calendar-month returns as a year x month table (for the tearsheet heatmap)."""
    idx = equity.index.tz_convert("UTC") if equity.index.tz is not None else equity.index
    eq = pd.Series(equity.to_numpy(), index=idx.tz_localize(None))
    month_end = eq.groupby([eq.index.year, eq.index.month]).last()
    first = float(eq.iloc[0])
    prev = month_end.shift(1)
    prev.iloc[0] = first
    rets = month_end / prev - 1.0
    table = rets.unstack(level=1)
    table.index.name = "year"
    table.columns.name = "month"
    return table
