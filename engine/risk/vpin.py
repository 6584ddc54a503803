"""VPIN order-flow toxicity on volume buckets (Easley, López de Prado, O'Hara 2012), live and in batch.

Volume is cut into buckets of exactly `bucket_volume`; a trade straddling a boundary is split pro rata. A bucket's
order imbalance is |buy - sell|, and VPIN is the mean imbalance of the last `window` buckets over the bucket volume.
`cdf` is the empirical CDF of the current VPIN among the last `cdf_window` VPIN values (itself included), which is
what the emergency trigger thresholds.

Buy volume comes from the taker side of trades, or from bulk-volume classification (BVC) of candles when trades are
missing: a bar's buy share is Phi(return / sigma of returns).

Both paths (`VpinTracker.update` bucket by bucket, `vpin_batch` over a whole history) run the same arithmetic in the
same order: cumulative volume and buy volume are running sums (np.cumsum is sequential), bucket edges are k * V, the
buy volume at an edge is interpolated linearly between the two surrounding trades, and the imbalance sum is a running
sum as well. So they agree exactly, not just approximately.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

BUCKET_COLUMNS = ["bucket", "ts", "buy_volume", "sell_volume", "imbalance", "vpin", "cdf"]


@dataclass(frozen=True)
class VpinBucket:
    """One completed volume bucket and the toxicity readings after it (NaN until the windows have filled)."""

    index: int
    ts: int
    buy_volume: float
    sell_volume: float
    vpin: float
    cdf: float


def _check_params(bucket_volume: float, window: int, cdf_window: int) -> None:
    if not (bucket_volume > 0 and np.isfinite(bucket_volume)):
        raise ValueError(f"bucket_volume: must be a positive number, got {bucket_volume!r}")
    if window < 1:
        raise ValueError(f"window: must be >= 1 bucket, got {window}")
    if cdf_window < 1:
        raise ValueError(f"cdf_window: must be >= 1 VPIN value, got {cdf_window}")


def trade_arrays(trades: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts ms, volume, buy volume) from ccxt trade dicts or a frame with timestamp/ts, amount, side columns."""
    if isinstance(trades, pd.DataFrame):
        ts_col = "timestamp" if "timestamp" in trades else "ts" if "ts" in trades else None
        if ts_col is None or "amount" not in trades or "side" not in trades:
            raise ValueError("trades: frame needs columns timestamp (or ts), amount and side")
        ts = trades[ts_col].to_numpy(dtype=np.int64)
        amount = trades["amount"].to_numpy(dtype=float)
        side = trades["side"].to_numpy()
    else:
        rows = list(trades)
        if rows and not isinstance(rows[0], Mapping):
            raise TypeError(f"trades: expected ccxt trade dicts or a DataFrame, got {type(rows[0]).__name__}")
        ts = np.fromiter((r["timestamp"] for r in rows), dtype=np.int64, count=len(rows))
        amount = np.fromiter((r["amount"] for r in rows), dtype=float, count=len(rows))
        side = np.array([r["side"] for r in rows], dtype=object)
    is_buy = side == "buy"
    bad = ~(is_buy | (side == "sell"))
    if bad.any():
        raise ValueError(f"trades: side must be 'buy' or 'sell' (taker side), got {side[bad][0]!r}")
    if (amount < 0).any() or not np.isfinite(amount).all():
        raise ValueError("trades: amount must be finite and >= 0")
    return ts, amount, np.where(is_buy, amount, 0.0)


def bulk_volume_classification(bars: pd.DataFrame, sigma_window: int = 50) -> pd.DataFrame:
    """Split each candle's volume into buy/sell by Phi(log return / rolling sigma), point-in-time (BVC).

    Until `sigma_window` past returns exist the split is undefined: buy and sell volume are NaN there (never a 50/50
    guess that would read as a perfectly balanced, non-toxic market).
    """
    for col in ("close", "volume"):
        if col not in bars:
            raise ValueError(f"bars: missing column {col!r}")
    if sigma_window < 2:
        raise ValueError(f"sigma_window: must be >= 2, got {sigma_window}")
    ret = np.log(bars["close"].astype(float)).diff()
    sigma = ret.rolling(sigma_window, min_periods=sigma_window).std().shift(1)  # past bars only, window full
    z = ret / sigma
    # a flat window (sigma 0): an up-move is all buying, a down-move all selling, no move balanced
    z = z.where(sigma != 0.0, np.sign(ret) * np.inf).where(sigma.notna())
    from scipy.special import ndtr  # imported on first use: not on the engine's start path

    buy_frac = ndtr(z.to_numpy())
    vol = bars["volume"].to_numpy(dtype=float)
    return pd.DataFrame({"volume": vol, "buy_volume": vol * buy_frac, "sell_volume": vol * (1 - buy_frac)},
                        index=bars.index)


def _edges(c_prev: float, b_prev: float, cum_v: np.ndarray, cum_b: np.ndarray, done_before: int,
           bucket_volume: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket edges completed within one chunk: (bucket numbers k >= 1, item positions, cumulative buy at edge k*V).

    `c_prev`/`b_prev` are the cumulative volume and buy volume before the chunk and `done_before` the buckets
    already completed; the edge's buy volume is interpolated between the two items around it.
    """
    total = float(cum_v[-1])
    n_total = int(total // bucket_volume)
    while float(n_total + 1) * bucket_volume <= total:  # guard floor-division rounding at exact edges
        n_total += 1
    while n_total > done_before and float(n_total) * bucket_volume > total:
        n_total -= 1
    ks = np.arange(done_before + 1, n_total + 1, dtype=np.int64)
    edges = ks.astype(float) * bucket_volume
    pos = np.searchsorted(cum_v, edges, side="left")
    c0 = np.where(pos > 0, cum_v[np.maximum(pos - 1, 0)], c_prev)
    b0 = np.where(pos > 0, cum_b[np.maximum(pos - 1, 0)], b_prev)
    b_at = b0 + (cum_b[pos] - b0) * (edges - c0) / (cum_v[pos] - c0)
    return ks, pos, b_at


class _Cdf:
    """Empirical CDF over the last `size` values, kept sorted for O(log n) updates."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> float:
        self.fifo.append(value)
        bisect.insort(self.sorted, value)
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        return bisect.bisect_right(self.sorted, value) / len(self.sorted)


class VpinTracker:
    """Live VPIN: feed trades as they arrive; each completed bucket yields a VpinBucket."""

    def __init__(self, bucket_volume: float, window: int = 50, cdf_window: int = 500) -> None:
        _check_params(bucket_volume, window, cdf_window)
        self.bucket_volume = float(bucket_volume)
        self.window = window
        self.cdf_window = cdf_window
        self._cum_v = 0.0  # cumulative volume and buy volume over everything seen
        self._cum_b = 0.0
        self._b_edge = 0.0  # cumulative buy volume at the last completed bucket edge
        self._n_buckets = 0
        self._imb_sums: deque[float] = deque([0.0], maxlen=window + 1)  # running imbalance sums S_k
        self._cdf = _Cdf(cdf_window)
        self.vpin = float("nan")
        self.cdf = float("nan")
        self.last_ts: int | None = None
        self._bar_tail: pd.DataFrame | None = None  # the last closes, so BVC sigma continues across update_bars

    @property
    def buckets_completed(self) -> int:
        """How many buckets have filled so far."""
        return self._n_buckets

    def update(self, trades: Any) -> list[VpinBucket]:
        """Add trades (ccxt dicts or a frame with timestamp, amount, side); returns the buckets they completed."""
        ts, vol, buy = trade_arrays(trades)
        return self.update_volume(ts, vol, buy)

    def update_bars(self, bars: pd.DataFrame, sigma_window: int = 50) -> list[VpinBucket]:
        """Add candles classified by BVC (for when trades are missing); index = bar open time.

        Bars inside the sigma warm-up are not classified and fill no bucket, so VPIN stays NaN until the sigma window
        is full and `window` buckets have filled. The sigma window continues across calls (chunks equal one batch).
        """
        frame = bars[["close", "volume"]]
        joined = frame if self._bar_tail is None else pd.concat([self._bar_tail, frame])
        bvc = bulk_volume_classification(joined, sigma_window).iloc[len(joined) - len(frame):]
        self._bar_tail = joined.iloc[-(sigma_window + 1):]
        ts = pd.DatetimeIndex(bars.index).as_unit("ms").asi8 if isinstance(bars.index, pd.DatetimeIndex) \
            else bars.index.to_numpy(dtype=np.int64)
        keep = bvc["buy_volume"].notna().to_numpy()
        return self.update_volume(ts[keep], bvc["volume"].to_numpy()[keep], bvc["buy_volume"].to_numpy()[keep])

    def update_volume(self, ts: np.ndarray, volume: np.ndarray, buy_volume: np.ndarray) -> list[VpinBucket]:
        """Add raw (ts, volume, buy volume) items in time order; the core both live and batch share."""
        ts = np.asarray(ts, dtype=np.int64)
        volume = np.asarray(volume, dtype=float)
        buy_volume = np.asarray(buy_volume, dtype=float)
        if not (len(ts) == len(volume) == len(buy_volume)):
            raise ValueError("volume: ts, volume and buy_volume must have the same length")
        if len(ts) == 0:
            return []
        if self.last_ts is not None and ts[0] < self.last_ts:
            raise ValueError(f"ts: trades must arrive in time order ({ts[0]} < last {self.last_ts})")
        cum_v = np.cumsum(np.concatenate([[self._cum_v], volume]))[1:]
        cum_b = np.cumsum(np.concatenate([[self._cum_b], buy_volume]))[1:]
        ks, pos, b_at = _edges(self._cum_v, self._cum_b, cum_v, cum_b, self._n_buckets, self.bucket_volume)
        out = []
        V = self.bucket_volume
        b_prev = self._b_edge
        for k, p, b in zip(ks.tolist(), pos.tolist(), b_at.tolist()):
            buy_k = b - b_prev
            imb = abs(2.0 * buy_k - V)
            s_k = self._imb_sums[-1] + imb
            self._imb_sums.append(s_k)
            if k >= self.window:
                self.vpin = (s_k - self._imb_sums[0]) / (self.window * V)
                self.cdf = self._cdf.push(self.vpin)
            out.append(VpinBucket(k - 1, int(ts[p]), buy_k, V - buy_k, self.vpin, self.cdf))
            b_prev = b
        self._b_edge = b_prev
        self._n_buckets += len(ks)
        self._cum_v, self._cum_b = float(cum_v[-1]), float(cum_b[-1])
        self.last_ts = int(ts[-1])
        return out


def _rolling_cdf(values: np.ndarray, cdf_window: int) -> np.ndarray:
    """Empirical CDF of each value among the last `cdf_window` values (itself included)."""
    out = np.empty(len(values))
    finite = not np.isnan(values).any()  # then a window's valid count is its length: no NaN scan per window
    for start in range(0, len(values), 4096):  # bounded memory for the sliding comparison
        stop = min(len(values), start + 4096)
        lo = max(0, start - cdf_window + 1)
        seg = values[lo:stop]
        padded = np.concatenate([np.full(cdf_window - 1 - (start - lo), np.nan), seg])
        win = np.lib.stride_tricks.sliding_window_view(padded, cdf_window)
        cur = values[start:stop]
        counts = np.count_nonzero(win <= cur[:, None], axis=1)
        valid = np.minimum(np.arange(start + 1, stop + 1), cdf_window) if finite else \
            np.count_nonzero(~np.isnan(win), axis=1)
        out[start:stop] = counts / valid
    return out


def vpin_from_volume(ts: np.ndarray, volume: np.ndarray, buy_volume: np.ndarray, bucket_volume: float,
                     window: int = 50, cdf_window: int = 500) -> pd.DataFrame:
    """Batch VPIN over (ts, volume, buy volume) items: one row per completed bucket (columns BUCKET_COLUMNS)."""
    _check_params(bucket_volume, window, cdf_window)
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) and np.any(np.diff(ts) < 0):
        raise ValueError("ts: trades must be sorted by time")
    if len(ts) == 0:
        return pd.DataFrame(columns=BUCKET_COLUMNS)
    cum_v = np.cumsum(np.concatenate([[0.0], np.asarray(volume, dtype=float)]))[1:]
    cum_b = np.cumsum(np.concatenate([[0.0], np.asarray(buy_volume, dtype=float)]))[1:]
    ks, pos, b_at = _edges(0.0, 0.0, cum_v, cum_b, 0, float(bucket_volume))
    V = float(bucket_volume)
    buy = np.diff(np.concatenate([[0.0], b_at]))
    imb = np.abs(2.0 * buy - V)
    sums = np.cumsum(np.concatenate([[0.0], imb]))
    vpin = np.full(len(ks), np.nan)
    if len(ks) >= window:
        vpin[window - 1:] = (sums[window:] - sums[:-window]) / (window * V)
    cdf = np.full(len(ks), np.nan)
    if len(ks) >= window:
        cdf[window - 1:] = _rolling_cdf(vpin[window - 1:], cdf_window)
    return pd.DataFrame({"bucket": ks - 1, "ts": ts[pos], "buy_volume": buy, "sell_volume": V - buy,
                         "imbalance": imb, "vpin": vpin, "cdf": cdf})


def vpin_batch(trades_df: pd.DataFrame, bucket_volume: float, window: int = 50,
               cdf_window: int = 500) -> pd.DataFrame:
    """Batch VPIN over a trade history (timestamp/ts, amount, side); equals VpinTracker fed the same trades."""
    ts, vol, buy = trade_arrays(trades_df)
    return vpin_from_volume(ts, vol, buy, bucket_volume, window, cdf_window)


def vpin_from_bars(bars: pd.DataFrame, bucket_volume: float, window: int = 50, cdf_window: int = 500,
                   sigma_window: int = 50) -> pd.DataFrame:
    """Batch VPIN from candles via bulk-volume classification (bucket ts = the bar that completed it).

    Bars in the BVC sigma warm-up are unclassified and fill no bucket: no VPIN exists before the window is full.
    """
    bvc = bulk_volume_classification(bars, sigma_window)
    ts = pd.DatetimeIndex(bars.index).as_unit("ms").asi8 if isinstance(bars.index, pd.DatetimeIndex) \
        else bars.index.to_numpy(dtype=np.int64)
    keep = bvc["buy_volume"].notna().to_numpy()
    return vpin_from_volume(ts[keep], bvc["volume"].to_numpy()[keep], bvc["buy_volume"].to_numpy()[keep],
                            bucket_volume, window, cdf_window)


def buckets_frame(buckets: Iterable[VpinBucket]) -> pd.DataFrame:
    """Live buckets as a frame with the batch columns, for comparison and display."""
    rows = [(b.index, b.ts, b.buy_volume, b.sell_volume, abs(b.buy_volume - b.sell_volume), b.vpin, b.cdf)
            for b in buckets]
    return pd.DataFrame(rows, columns=BUCKET_COLUMNS)


MAX_BAR_DAY_UNITS = 5.0  # one bar never counts for more than five typical days of volume (bounds the bucket count)


def volume_in_day_units(ts: np.ndarray, volume: np.ndarray, window_days: int = 30) -> np.ndarray:
    """Each item's volume in units of the median daily volume of the previous `window_days` completed UTC days.

    Bucket sizing that stays robust when volume changes by orders of magnitude (a 2014 BTC file whose first month
    traded almost nothing): buckets of `frac` day-units adapt to the recent volume level, point-in-time (only days
    that ended before the item count). Items before the first completed day with volume get 0 (no bucket fills), and
    no item counts for more than MAX_BAR_DAY_UNITS days, so the number of buckets stays about days / frac.
    """
    if window_days < 1:
        raise ValueError(f"window_days: must be >= 1, got {window_days}")
    ts = np.asarray(ts, dtype=np.int64)
    vol = np.nan_to_num(np.asarray(volume, dtype=float), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    if len(ts) == 0:
        return np.zeros(0)
    day = ts // 86_400_000
    days, inverse = np.unique(day, return_inverse=True)
    totals = np.bincount(inverse, weights=vol, minlength=len(days))
    med = pd.Series(np.where(totals > 0, totals, np.nan)).rolling(window_days, min_periods=1).median().shift(1)
    scale = med.to_numpy()[inverse]
    out = np.where(np.isfinite(scale) & (scale > 0), vol / np.where(scale > 0, scale, 1.0), 0.0)
    return np.minimum(np.nan_to_num(out, nan=0.0), MAX_BAR_DAY_UNITS)
