"""Microstructure features on a bar index: order-flow imbalance and VPIN from trades, Amihud illiquidity from bars,
spread and depth from book snapshots.

Trades carry the taker (aggressor) side, so volume is classified exactly rather than by bulk classification. A trade
or snapshot counts for bar t only if its timestamp is before bar t's close (point-in-time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.features.bars import bar_close_ms, index_ms as _index_ms


def _check_cols(frame: pd.DataFrame, cols: tuple[str, ...], name: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}")


def _bar_positions(index: pd.DatetimeIndex, timeframe: str, ts: np.ndarray) -> np.ndarray:
    """Position of the bar each event falls into (open <= ts < close), -1 outside the index."""
    opens = _index_ms(index)
    close = bar_close_ms(index, timeframe)
    pos = np.searchsorted(opens, ts, side="right") - 1
    inside = (pos >= 0) & (ts < close[np.clip(pos, 0, None)])
    return np.where(inside, pos, -1)


def order_flow_imbalance(trades: pd.DataFrame, index: pd.DatetimeIndex, timeframe: str,
                         window: int = 12) -> pd.DataFrame:
    """Per bar: taker buy and sell volume, imbalance (buy-sell)/(buy+sell) and its trailing `window`-bar version."""
    _check_cols(trades, ("ts", "amount", "side"), "trades")
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    ts = trades["ts"].to_numpy("int64")
    amount = trades["amount"].to_numpy("float64")
    side = trades["side"].to_numpy()
    if side.dtype.kind in "OUS":
        side = np.where(side == "buy", 1, -1)
    pos = _bar_positions(index, timeframe, ts)
    ok = pos >= 0
    n = len(index)
    buy = np.bincount(pos[ok], weights=np.where(side[ok] > 0, amount[ok], 0.0), minlength=n)[:n]
    sell = np.bincount(pos[ok], weights=np.where(side[ok] < 0, amount[ok], 0.0), minlength=n)[:n]
    total = buy + sell
    with np.errstate(invalid="ignore", divide="ignore"):
        ofi = np.where(total > 0, (buy - sell) / total, np.nan)
    buy_s, sell_s = pd.Series(buy, index=index), pd.Series(sell, index=index)
    rb, rs = buy_s.rolling(window, min_periods=1).sum(), sell_s.rolling(window, min_periods=1).sum()
    return pd.DataFrame({"buy_volume": buy, "sell_volume": sell, "ofi": ofi,
                         f"ofi_{window}": ((rb - rs) / (rb + rs).where(rb + rs > 0)).to_numpy()}, index=index)


def vpin_buckets(trades: pd.DataFrame, bucket_volume: float) -> pd.DataFrame:
    """Fill equal-volume buckets with taker buy/sell volume (trades split across bucket edges).

    Returns one row per *completed* bucket: end_ts (the trade that completed it), buy, sell, imbalance |buy-sell|/V.
    """
    _check_cols(trades, ("ts", "amount", "side"), "trades")
    if bucket_volume <= 0:
        raise ValueError(f"bucket_volume: must be > 0, got {bucket_volume}")
    ts = trades["ts"].to_numpy("int64")
    amount = trades["amount"].to_numpy("float64")
    side = trades["side"].to_numpy()
    if side.dtype.kind in "OUS":
        side = np.where(side == "buy", 1, -1)
    signed_buy = np.where(side > 0, amount, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(amount)])
    cum_buy = np.concatenate([[0.0], np.cumsum(signed_buy)])
    n_buckets = int(cum[-1] // bucket_volume)
    if n_buckets == 0:
        return pd.DataFrame({"end_ts": pd.Series(dtype="int64"), "buy": [], "sell": [], "imbalance": []})
    edges = bucket_volume * np.arange(1, n_buckets + 1)
    # Trade j completes the bucket edge e when cum[j] < e <= cum[j+1]; buy volume up to e interpolates within trade j.
    j = np.searchsorted(cum, edges, side="left") - 1
    frac = (edges - cum[j]) / np.where(amount[j] > 0, amount[j], 1.0)
    buy_at_edge = cum_buy[j] + frac * signed_buy[j]
    buy = np.diff(np.concatenate([[0.0], buy_at_edge]))
    sell = bucket_volume - buy
    return pd.DataFrame({"end_ts": ts[j], "buy": buy, "sell": sell,
                         "imbalance": np.abs(buy - sell) / bucket_volume})


def vpin_feature(trades: pd.DataFrame, index: pd.DatetimeIndex, timeframe: str, bucket_volume: float,
                 window: int = 50) -> pd.Series:
    """VPIN (mean bucket imbalance over the last `window` completed buckets) as known at each bar's close."""
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    buckets = vpin_buckets(trades, bucket_volume)
    vpin = buckets["imbalance"].rolling(window, min_periods=window).mean().to_numpy()
    end = buckets["end_ts"].to_numpy("int64")
    close = bar_close_ms(index, timeframe)
    pos = np.searchsorted(end, close, side="left") - 1  # buckets completed strictly before the close
    values = np.where(pos >= 0, vpin[np.clip(pos, 0, None)] if len(vpin) else np.nan, np.nan)
    return pd.Series(values, index=index, name=f"vpin_{window}")


def amihud(frame: pd.DataFrame, window: int = 24) -> pd.Series:
    """Amihud illiquidity: trailing mean of |log return| / quote volume (close * volume), scaled by 1e6."""
    _check_cols(frame, ("close", "volume"), "frame")
    if window < 1:
        raise ValueError(f"window: must be >= 1, got {window}")
    ret = np.log(frame["close"].astype("float64")).diff().abs()
    dollar = frame["close"] * frame["volume"]
    ratio = ret / dollar.where(dollar > 0)
    return (ratio.rolling(window, min_periods=max(1, window // 2)).mean() * 1e6).rename(f"amihud_{window}")


def book_features(snapshots: pd.DataFrame, index: pd.DatetimeIndex, timeframe: str,
                  window: int = 12) -> pd.DataFrame:
    """Per bar from book snapshots taken inside it: mean and last spread (bps), last depth, depth vs trailing median."""
    _check_cols(snapshots, ("ts", "spread_bps", "depth_bid", "depth_ask"), "snapshots")
    ts = snapshots["ts"].to_numpy("int64")
    pos = _bar_positions(index, timeframe, ts)
    ok = pos >= 0
    n = len(index)
    spread = snapshots["spread_bps"].to_numpy("float64")
    depth = (snapshots["depth_bid"] + snapshots["depth_ask"]).to_numpy("float64")
    count = np.bincount(pos[ok], minlength=n)[:n]
    spread_sum = np.bincount(pos[ok], weights=spread[ok], minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        spread_mean = np.where(count > 0, spread_sum / count, np.nan)
    last_spread = np.full(n, np.nan)
    last_depth = np.full(n, np.nan)
    # Later snapshots overwrite earlier ones within a bar (snapshots are sorted by ts).
    order = np.argsort(ts[ok], kind="stable")
    last_spread[pos[ok][order]] = spread[ok][order]
    last_depth[pos[ok][order]] = depth[ok][order]
    depth_s = pd.Series(last_depth, index=index).ffill()
    median = depth_s.rolling(window, min_periods=1).median()
    return pd.DataFrame({"spread_bps": spread_mean, "spread_bps_last": last_spread,
                         "depth": depth_s.to_numpy(), "depth_ratio": (depth_s / median.where(median > 0)).to_numpy()},
                        index=index)
