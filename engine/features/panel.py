"""Build the research panel (symbol -> bar frame with funding, basis and feeds) from state.db, point-in-time.

Alignment rule for everything that is not a candle: a value belongs to bar t only if it was known *before bar t's
close* (bar open + timeframe). Funding rows are known at their `ts`; feed rows at their `published_ts` (never their
observation `ts`): at each bar the feed column holds the newest observation among those already published.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from engine.clock import timeframe_ms
from engine.data.symbols import base_asset, perp_symbol
from engine.features.bars import bar_close_ms, index_ms as _index_ms
from engine.store.candles import load_candles
from engine.store.db import Store

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


def _query(store: Store, sql: str, args: Sequence[object]) -> list[tuple]:
    if not store.is_sqlite:
        sql = sql.replace("?", "%s")
    conn = store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(sql, list(args))
        rows = cur.fetchall()
        cur.close()
    finally:
        conn.close()
    return rows


def _series_rows(store: Store, columns: str, table: str, exchange: str, symbol: str, since_ms: int | None,
                 until_ms: int | None) -> list[tuple]:
    """Rows of one exchange/symbol series in [since_ms, until_ms), oldest first (shared by the series loaders)."""
    sql = f"SELECT {columns} FROM {table} WHERE exchange = ? AND symbol = ?"
    args: list[object] = [exchange, symbol]
    if since_ms is not None:
        sql += " AND ts >= ?"
        args.append(int(since_ms))
    if until_ms is not None:
        sql += " AND ts < ?"
        args.append(int(until_ms))
    return _query(store, sql + " ORDER BY ts", args)


def align_known_before(bar_close: np.ndarray, known_ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each bar close, the last value whose known time is strictly before it (NaN when none); both sorted."""
    if len(known_ts) == 0:
        return np.full(len(bar_close), np.nan)
    pos = np.searchsorted(known_ts, bar_close, side="left") - 1
    out = np.where(pos >= 0, values[np.clip(pos, 0, None)], np.nan)
    return out.astype("float64")


def latest_published(obs_ts: np.ndarray, published_ts: np.ndarray,
                     values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a feed to (known_ts, value) steps: at each publication the newest observation published so far.

    A late-published *older* observation never overrides a newer one already known.
    """
    order = np.lexsort((obs_ts, published_ts))
    obs, pub, val = obs_ts[order], published_ts[order], values[order]
    newest = np.maximum.accumulate(obs)
    keep = obs >= newest
    pub, val = pub[keep], val[keep]
    # Several rows published at the same instant: the last (newest observation) wins.
    last = np.r_[pub[1:] != pub[:-1], True]
    return pub[last], val[last]


def load_funding(store: Store, exchange: str, symbol: str, since_ms: int | None = None,
                 until_ms: int | None = None) -> pd.DataFrame:
    """Funding rows of a perpetual (known at their ts) with rate, mark and index price, oldest first."""
    rows = _series_rows(store, "ts, rate, mark_price, index_price", "funding_rates", exchange, symbol, since_ms, until_ms)
    frame = pd.DataFrame(rows, columns=["ts", "rate", "mark_price", "index_price"])
    return frame.astype({"ts": "int64", "rate": "float64", "mark_price": "float64", "index_price": "float64"})


def load_feed_rows(store: Store, until_ms: int | None = None, series: Iterable[str] | None = None,
                   since_ms: int | None = None) -> pd.DataFrame:
    """Feed observations (feed, series, ts, published_ts, value) published before `until_ms`.

    With `since_ms`, rows published before it are reduced to each series' newest observation (the one a bar closing
    after since_ms can still see): the same alignment as all rows give for bars from since_ms on, without reading
    the whole feed history on every tick (a live engine's history only grows)."""
    cols = "feed, series, ts, published_ts, value"
    upper, args = ("", []) if until_ms is None else (" AND published_ts < ?", [int(until_ms)])
    if since_ms is None:
        rows = _query(store, f"SELECT {cols} FROM feed_values WHERE 1 = 1{upper}", args)
    else:
        carried = _query(store, f"SELECT f.feed, f.series, f.ts, f.published_ts, f.value FROM feed_values f JOIN "
                                "(SELECT feed, series, MAX(ts) AS mts FROM feed_values WHERE published_ts < ? "
                                "GROUP BY feed, series) m ON f.feed = m.feed AND f.series = m.series AND f.ts = m.mts",
                         [int(since_ms)])
        rows = carried + _query(store, f"SELECT {cols} FROM feed_values WHERE published_ts >= ?{upper}",
                                [int(since_ms)] + args)
    frame = pd.DataFrame(rows, columns=["feed", "series", "ts", "published_ts", "value"])
    if series is not None:
        frame = frame[frame["series"].isin(list(series))]
    return frame


def _funding_known_from(store: Store, exchange: str, symbol: str, since_ms: int | None,
                        until_ms: int | None) -> pd.DataFrame:
    """Funding rows a bar from `since_ms` on can see: the last one before since_ms and all later ones (all rows
    without since_ms)."""
    if since_ms is None:
        return load_funding(store, exchange, symbol, None, until_ms)
    before = _query(store, "SELECT ts, rate, mark_price, index_price FROM funding_rates WHERE exchange = ? AND "
                           "symbol = ? AND ts < ? ORDER BY ts DESC LIMIT 1", [exchange, symbol, int(since_ms)])
    rows = before + _series_rows(store, "ts, rate, mark_price, index_price", "funding_rates", exchange, symbol,
                                 since_ms, until_ms)
    frame = pd.DataFrame(rows, columns=["ts", "rate", "mark_price", "index_price"])
    return frame.astype({"ts": "int64", "rate": "float64", "mark_price": "float64", "index_price": "float64"})


def feed_columns_for(symbol: str, all_series: Iterable[str], symbols: Sequence[str]) -> dict[str, str]:
    """Map feed series to column names for one symbol.

    A series prefixed with a requested symbol's base (``BTC_exchange_netflow``) is per-asset: it goes only to that
    symbol, with the prefix stripped (``exchange_netflow``). Every other series is global and keeps its name.
    """
    bases = {base_asset(s) for s in symbols}
    mine = base_asset(symbol)
    out: dict[str, str] = {}
    for name in sorted(set(all_series)):
        prefix, sep, rest = name.partition("_")
        if sep and prefix in bases:
            if prefix == mine and rest:
                out[name] = rest
        else:
            out[name] = name
    return out


def align_feeds(index: pd.DatetimeIndex, timeframe: str, rows: pd.DataFrame,
                columns: Mapping[str, str]) -> pd.DataFrame:
    """Feed columns on a bar index, each value known (published) strictly before the bar's close."""
    close = bar_close_ms(index, timeframe)
    data: dict[str, np.ndarray] = {}
    for series, column in columns.items():
        part = rows[rows["series"] == series]
        known, vals = latest_published(part["ts"].to_numpy("int64"), part["published_ts"].to_numpy("int64"),
                                       part["value"].to_numpy("float64"))
        data[column] = align_known_before(close, known, vals)
    return pd.DataFrame(data, index=index)


def load_panel(store: Store, exchange: str, symbols: Sequence[str], timeframe: str, since_ms: int | None = None,
               until_ms: int | None = None, *, feeds: bool | Iterable[str] = True,
               microstructure: bool = False) -> dict[str, pd.DataFrame]:
    """Panel of bars per symbol with funding_rate, basis and feed columns aligned as of publication time.

    With ``microstructure`` it also adds per-bar trade and book columns (see `microstructure_columns`) from the
    `trades` and `book_snapshots` tables.
    """
    if isinstance(symbols, str) or not symbols:
        raise ValueError("symbols: expected a non-empty list of symbols")
    step = timeframe_ms(timeframe)
    feed_rows: pd.DataFrame | None = None
    if feeds:
        wanted = None if feeds is True else list(feeds)  # type: ignore[arg-type]
        feed_rows = load_feed_rows(store, None if until_ms is None else until_ms + step, wanted, since_ms)
    panel: dict[str, pd.DataFrame] = {}
    for symbol in symbols:
        bars = load_candles(store, exchange, symbol, timeframe, since_ms, until_ms)
        close_ms = bar_close_ms(bars.index, timeframe)
        perp = perp_symbol(symbol)
        funding = _funding_known_from(store, exchange, perp, since_ms, None if until_ms is None else until_ms + step)
        if len(funding):
            known = funding["ts"].to_numpy("int64")
            bars["funding_rate"] = align_known_before(close_ms, known, funding["rate"].to_numpy("float64"))
            ratio = (funding["mark_price"] / funding["index_price"] - 1.0).to_numpy("float64")
            if np.isfinite(ratio).any():
                bars["basis"] = align_known_before(close_ms, known, ratio)
        if "basis" not in bars.columns and perp != symbol:
            perp_bars = load_candles(store, exchange, perp, timeframe, since_ms, until_ms)
            if len(perp_bars):
                bars["basis"] = perp_bars["close"].reindex(bars.index) / bars["close"] - 1.0
        if feed_rows is not None and len(feed_rows):
            cols = feed_columns_for(symbol, feed_rows["series"].unique(), symbols)
            aligned = align_feeds(bars.index, timeframe, feed_rows, cols)
            for col in aligned.columns:
                bars[col] = aligned[col]
        if microstructure and len(bars):
            micro = microstructure_columns(store, exchange, symbol, bars.index, timeframe)
            for col in micro.columns:
                bars[col] = micro[col]
        panel[symbol] = bars
    return panel


_AGG_RULES = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def infer_timeframe_ms(index: pd.DatetimeIndex) -> int:
    """The bar spacing of an index in ms (the most common difference), for resampling checks."""
    if len(index) < 2:
        raise ValueError("index: need at least two bars to infer the timeframe")
    diffs = np.diff(_index_ms(index))
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def resample_frame(frame: pd.DataFrame, timeframe: str, *, drop_partial: bool = True) -> pd.DataFrame:
    """Aggregate one bar frame to a coarser timeframe; labels are bar open times, other columns take the last value.

    With ``drop_partial`` the final bucket is dropped unless the source bars cover it to its close, so a resampled bar
    never pretends to be complete while its period is still running.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing columns {missing}")
    step = timeframe_ms(timeframe)
    if frame.empty:
        return frame.copy()
    rules = {c: _AGG_RULES.get(c, "last") for c in frame.columns}
    out = frame.resample(pd.Timedelta(milliseconds=step), label="left", closed="left", origin="epoch").agg(rules)
    counts = frame["close"].resample(pd.Timedelta(milliseconds=step), label="left", closed="left",
                                     origin="epoch").count()
    out = out[counts.to_numpy() > 0]
    if drop_partial and len(frame) >= 2 and len(out):
        src = infer_timeframe_ms(frame.index)
        if src > step:
            raise ValueError(f"timeframe: {timeframe} is finer than the source bars ({src} ms)")
        last_covered = int(_index_ms(frame.index)[-1]) + src
        if last_covered < int(_index_ms(out.index)[-1]) + step:
            out = out.iloc[:-1]
    out.index.name = "ts"
    return out


def resample_panel(panel: Mapping[str, pd.DataFrame], timeframe: str, *,
                   drop_partial: bool = True) -> dict[str, pd.DataFrame]:
    """Resample every frame of a panel (e.g. 1m -> 4h), labels = bar open time."""
    return {symbol: resample_frame(frame, timeframe, drop_partial=drop_partial) for symbol, frame in panel.items()}


def load_trades(store: Store, exchange: str, symbol: str, since_ms: int | None = None,
                until_ms: int | None = None) -> pd.DataFrame:
    """Trades (ts, price, amount, side as +1 buy / -1 sell taker) for microstructure features, oldest first."""
    rows = _series_rows(store, "ts, price, amount, side", "trades", exchange, symbol, since_ms, until_ms)
    frame = pd.DataFrame(rows, columns=["ts", "price", "amount", "side"])
    frame["side"] = np.where(frame["side"] == "buy", 1, -1).astype("int8")
    return frame.astype({"ts": "int64", "price": "float64", "amount": "float64"})


def load_book_snapshots(store: Store, exchange: str, symbol: str, since_ms: int | None = None,
                        until_ms: int | None = None) -> pd.DataFrame:
    """Book snapshot summaries (ts, mid, spread_bps, depth_bid, depth_ask), oldest first."""
    rows = _series_rows(store, "ts, mid, spread_bps, depth_bid, depth_ask", "book_snapshots", exchange, symbol, since_ms, until_ms)
    frame = pd.DataFrame(rows, columns=["ts", "mid", "spread_bps", "depth_bid", "depth_ask"])
    return frame.astype({"ts": "int64", "mid": "float64", "spread_bps": "float64", "depth_bid": "float64",
                         "depth_ask": "float64"})


MICROSTRUCTURE_COLUMNS = ("ofi", "ofi_12", "vpin", "spread_bps", "depth", "depth_ratio")


def microstructure_columns(store: Store, exchange: str, symbol: str, index: pd.DatetimeIndex, timeframe: str,
                           bucket_volume: float | None = None, vpin_window: int = 50) -> pd.DataFrame:
    """Per-bar order-flow imbalance, VPIN and book spread/depth for a bar index (NaN where no trades or books).

    The VPIN bucket defaults to the mean traded volume per bar over the *first* 50 bars of the index (about one
    bucket per bar), so it never depends on later data: a history truncated after bar 50 gets the same buckets.
    """
    from engine.features.microstructure import book_features, order_flow_imbalance, vpin_feature

    if len(index) == 0:
        return pd.DataFrame(index=index, columns=list(MICROSTRUCTURE_COLUMNS), dtype="float64")
    start = int(_index_ms(index)[0])
    end = int(bar_close_ms(index, timeframe)[-1])
    trades = load_trades(store, exchange, symbol, start, end)
    out = pd.DataFrame(index=index)
    if len(trades):
        ofi = order_flow_imbalance(trades, index, timeframe, 12)
        out["ofi"], out["ofi_12"] = ofi["ofi"], ofi["ofi_12"]
        head = min(50, len(index))
        head_end = int(bar_close_ms(index[:head], timeframe)[-1])
        bucket = bucket_volume or float(trades.loc[trades["ts"] < head_end, "amount"].sum()) / head
        out["vpin"] = vpin_feature(trades, index, timeframe, bucket, vpin_window) if bucket > 0 else np.nan
    books = load_book_snapshots(store, exchange, symbol, start, end)
    if len(books):
        book = book_features(books, index, timeframe, 12)
        out["spread_bps"], out["depth"], out["depth_ratio"] = book["spread_bps"], book["depth"], book["depth_ratio"]
    return out.reindex(columns=list(MICROSTRUCTURE_COLUMNS)).astype("float64")
