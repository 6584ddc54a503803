"""Binance's public REST endpoints on the twin (spot /api/v3 and USD-M /fapi/v1), served from the simulator.

exchangeInfo, klines, aggTrades, trades, depth, ticker (24hr, price, bookTicker), premiumIndex, fundingRate, time and
ping, with Binance's parameter rules (limits, the one-hour aggTrades window) and error codes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from engine.clock import timeframe_ms
from engine.data.simulator.events import MIN_MS
from engine.data.simulator.exchange import TIMEFRAMES
from engine.data.simulator.world import EPOCH_MS
from engine.venue.errors import VenueError, bad_param
from engine.venue.markets import FUTURES, SPOT, Listing, exchange_info, fmt, parse_int

if TYPE_CHECKING:
    from engine.venue.server import Twin

Handler = Callable[["Twin", str, dict[str, str]], Any]
HOUR_MS = 3_600_000


def _limit(params: dict[str, str], default: int, maximum: int) -> int:
    value = parse_int(params, "limit", default)
    assert value is not None
    if value < 1:
        raise VenueError(-1100, "Illegal characters found in parameter 'limit'.")
    return min(value, maximum)


def ping(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET ping."""
    return {}


def server_time(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET time: the server's wall clock (the clock signed requests are checked against)."""
    return {"serverTime": int(time.time() * 1000)}


def info(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET exchangeInfo."""
    return exchange_info(twin.listings, market, int(time.time() * 1000))


def klines(twin: "Twin", market: str, params: dict[str, str]) -> list[list[Any]]:
    """GET klines: [open time, o, h, l, c, v, close time, quote volume, trades, taker buy base, taker buy quote, 0]."""
    listing = twin.listings.get(market, params.get("symbol"))
    interval = params.get("interval")
    if not interval:
        raise bad_param("interval")
    if interval not in TIMEFRAMES:
        raise VenueError(-1120, "Invalid interval.")
    limit = _limit(params, 500, 1500 if market == FUTURES else 1000)
    step = timeframe_ms(interval)
    start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
    now = twin.sim.milliseconds()
    if start is not None:
        rows = twin.sim.ohlcv_arrays(listing.symbol, interval, start, min(start + (limit + 1) * step, now + 1))
        if end is not None:
            rows = rows[rows[:, 0] <= end]
        rows = rows[:limit]
    else:
        top = now + 1 if end is None else min(end + 1, now + 1)
        rows = twin.sim.ohlcv_arrays(listing.symbol, interval, max(EPOCH_MS, top - (limit + 1) * step), top)[-limit:]
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    return [[int(r[0]), fmt(r[1], pd), fmt(r[2], pd), fmt(r[3], pd), fmt(r[4], pd), fmt(r[5], ad),
             int(r[0]) + step - 1, fmt(r[5] * r[4], 8), 0, "0", "0", "0"] for r in rows]


def _tape(twin: "Twin", listing: Listing, params: dict[str, str], limit: int) -> Any:
    """Trades selected by fromId / startTime / endTime / limit as Binance selects them."""
    start, end, from_id = parse_int(params, "startTime"), parse_int(params, "endTime"), parse_int(params, "fromId")
    now = twin.sim.milliseconds()
    if start is not None and end is not None and end - start > HOUR_MS:
        raise VenueError(-1127, "More than 1 hours between startTime and endTime.")
    if from_id is not None:
        since = EPOCH_MS + (from_id // 100) * MIN_MS
        t = twin.sim.tape(listing.symbol, since, min(now + 1, since + HOUR_MS))
        keep = t.ident >= from_id
        sel = np.flatnonzero(keep)[:limit]
    elif start is not None or end is not None:
        lo = start if start is not None else end - HOUR_MS  # type: ignore[operator]
        hi = end + 1 if end is not None else lo + HOUR_MS
        t = twin.sim.tape(listing.symbol, lo, min(hi, now + 1))
        sel = np.arange(min(limit, t.ts.size))
    else:
        span = 10 * MIN_MS
        while True:
            t = twin.sim.tape(listing.symbol, max(EPOCH_MS, now - span), now + 1)
            if t.ts.size >= limit or span > 64 * HOUR_MS:
                break
            span *= 4
        sel = np.arange(max(0, t.ts.size - limit), t.ts.size)
    return t, sel


def agg_trades(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET aggTrades (each simulated trade is its own aggregate: f = l = a)."""
    listing = twin.listings.get(market, params.get("symbol"))
    t, sel = _tape(twin, listing, params, _limit(params, 500, 1000))
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    return [{"a": int(t.ident[i]), "p": fmt(t.price[i], pd), "q": fmt(t.amount[i], ad), "f": int(t.ident[i]),
             "l": int(t.ident[i]), "T": int(t.ts[i]), "m": not bool(t.buy[i]), "M": True} for i in sel]


def trades(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET trades (recent) and historicalTrades (fromId)."""
    listing = twin.listings.get(market, params.get("symbol"))
    t, sel = _tape(twin, listing, {k: v for k, v in params.items() if k in ("fromId", "limit")},
                   _limit(params, 500, 1000))
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    return [{"id": int(t.ident[i]), "price": fmt(t.price[i], pd), "qty": fmt(t.amount[i], ad),
             "quoteQty": fmt(t.price[i] * t.amount[i], 8), "time": int(t.ts[i]), "isBuyerMaker": not bool(t.buy[i]),
             "isBestMatch": True} for i in sel]


def depth(twin: "Twin", market: str, params: dict[str, str]) -> dict[str, Any]:
    """GET depth: the twin's current book (at most its 50 simulated levels) with lastUpdateId."""
    listing = twin.listings.get(market, params.get("symbol"))
    return twin.feed.depth_snapshot(listing, _limit(params, 100, 5000))


def _ticker(twin: "Twin", listing: Listing) -> dict[str, Any]:
    now = twin.sim.milliseconds()
    rows = twin.sim.ohlcv_arrays(listing.symbol, "1m", now - 24 * HOUR_MS, now + 1)
    book = twin.feed.book(listing)
    bid, ask = book.levels("bids", 1)[0], book.levels("asks", 1)[0]
    pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
    o, last = float(rows[0, 1]), float(rows[-1, 4])
    vol = float(rows[:, 5].sum())
    qv = float((rows[:, 5] * rows[:, 4]).sum())
    return {"symbol": listing.id, "priceChange": fmt(last - o, pd), "priceChangePercent": f"{(last / o - 1) * 100:.3f}",
            "weightedAvgPrice": fmt(qv / vol if vol else last, pd), "prevClosePrice": fmt(o, pd),
            "lastPrice": fmt(last, pd), "lastQty": "0", "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0],
            "askQty": ask[1], "openPrice": fmt(o, pd), "highPrice": fmt(rows[:, 2].max(), pd),
            "lowPrice": fmt(rows[:, 3].min(), pd), "volume": fmt(vol, ad), "quoteVolume": fmt(qv, 8),
            "openTime": int(rows[0, 0]), "closeTime": now, "firstId": -1, "lastId": -1, "count": 0}


def _each(twin: "Twin", market: str, params: dict[str, str], fn: Callable[[Listing], Any]) -> Any:
    if params.get("symbol"):
        return fn(twin.listings.get(market, params["symbol"]))
    return [fn(x) for x in twin.listings.all(market)]


def ticker_24hr(twin: "Twin", market: str, params: dict[str, str]) -> Any:
    """GET ticker/24hr (one symbol or all)."""
    return _each(twin, market, params, lambda x: _ticker(twin, x))


def ticker_price(twin: "Twin", market: str, params: dict[str, str]) -> Any:
    """GET ticker/price."""
    return _each(twin, market, params, lambda x: {"symbol": x.id, "price": fmt(twin.feed.last_price(x),
                                                                                 x.inst.price_decimals)})


def book_ticker(twin: "Twin", market: str, params: dict[str, str]) -> Any:
    """GET ticker/bookTicker: best bid and ask."""
    def one(x: Listing) -> dict[str, Any]:
        book = twin.feed.book(x)
        (bp, bq), (ap, aq) = book.levels("bids", 1)[0], book.levels("asks", 1)[0]
        return {"symbol": x.id, "bidPrice": bp, "bidQty": bq, "askPrice": ap, "askQty": aq}
    return _each(twin, market, params, one)


def premium_index(twin: "Twin", market: str, params: dict[str, str]) -> Any:
    """GET /fapi/v1/premiumIndex: mark and index price, last funding rate, next funding time."""
    return _each(twin, market, params, twin.feed.mark_price)


def funding_rate(twin: "Twin", market: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/fundingRate: settled funding rates, oldest first."""
    listing = twin.listings.get(market, params.get("symbol"))
    limit = _limit(params, 100, 1000)
    start, end = parse_int(params, "startTime"), parse_int(params, "endTime")
    rows = twin.sim.fetch_funding_rate_history(listing.symbol, since=start, limit=limit)
    if end is not None:
        rows = [r for r in rows if r["timestamp"] <= end]
    mark = twin.feed.mark_price(listing)["markPrice"]
    return [{"symbol": listing.id, "fundingTime": r["timestamp"], "fundingRate": f"{r['fundingRate']:.8f}",
             "markPrice": mark} for r in rows]


def routes() -> dict[tuple[str, str], tuple[Handler, str, int]]:
    """(method, path) -> (handler, market, request weight) for every public endpoint."""
    table: dict[tuple[str, str], tuple[Handler, str, int]] = {}
    common = {"ping": (ping, 1), "time": (server_time, 1), "exchangeInfo": (info, 20), "klines": (klines, 2),
              "aggTrades": (agg_trades, 2), "trades": (trades, 25), "historicalTrades": (trades, 25),
              "depth": (depth, 5), "ticker/24hr": (ticker_24hr, 2), "ticker/price": (ticker_price, 2),
              "ticker/bookTicker": (book_ticker, 2)}
    for name, (fn, weight) in common.items():
        table[("GET", f"/api/v3/{name}")] = (fn, SPOT, weight)
        table[("GET", f"/fapi/v1/{name}")] = (fn, FUTURES, weight)
    table[("GET", "/fapi/v1/premiumIndex")] = (premium_index, FUTURES, 1)
    table[("GET", "/fapi/v1/fundingRate")] = (funding_rate, FUTURES, 1)
    table[("GET", "/fapi/v2/ticker/price")] = (ticker_price, FUTURES, 1)
    return table
