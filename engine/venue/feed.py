"""The twin's market feed over the simulator: depth books with Binance update ids, the trade tape, klines, mark price.

A book is regenerated only when its inputs change (the simulator's book depends on the second and the last trade),
and each regeneration takes the next update id and records which price levels it touched. A depth stream update
carries the union of the levels touched since the previous update with their current amounts (0 = removed) and
`U` = first id, `u` = last id (USD-M adds `pu`), so applying it onto any REST snapshot taken in between yields the
current book: ccxt's order-book sync (snapshot + buffered diffs) reconstructs exactly the twin's book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.clock import timeframe_ms
from engine.data.simulator import SimulatedExchange
from engine.data.simulator.events import MIN_MS
from engine.venue.markets import FUTURES, Listing, Listings, fmt

BOOK_LEVELS = 50


@dataclass
class BookState:
    """One listing's current book (price string -> amount string per side) and its update-id history."""

    last_id: int
    key: tuple[int, int] = (-1, -1)
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    ts: int = 0
    published_id: int = 0
    touched_bids: set[str] = field(default_factory=set)
    touched_asks: set[str] = field(default_factory=set)

    def levels(self, side: str, limit: int | None = None) -> list[list[str]]:
        """Best-first [price, amount] strings of one side."""
        book = self.bids if side == "bids" else self.asks
        ordered = sorted(book.items(), key=lambda kv: float(kv[0]), reverse=(side == "bids"))
        return [[p, a] for p, a in ordered[: limit or len(ordered)]]

    def floats(self, side: str) -> list[tuple[float, float]]:
        """Best-first (price, amount) floats of one side, for matching."""
        return [(float(p), float(a)) for p, a in self.levels(side)]


@dataclass
class Cursor:
    """Where a listing's trade and kline streams stand."""

    trade_ts: int
    trade_ident: int = -1
    kline_open: dict[str, int] = field(default_factory=dict)


class MarketFeed:
    """Market state per listing, advanced by the server's tick and read by REST, streams and matching."""

    def __init__(self, sim: SimulatedExchange, listings: Listings) -> None:
        self.sim = sim
        self.listings = listings
        self._books: dict[tuple[str, str], BookState] = {}
        now = sim.milliseconds()
        self._cursors = {(x.market, x.id): Cursor(trade_ts=now + 1) for x in listings.all()}

    def now(self) -> int:
        """Simulated now (ms)."""
        return self.sim.milliseconds()

    # ----- depth ------------------------------------------------------------------------------------------------
    def book(self, listing: Listing) -> BookState:
        """The listing's book at simulated now, regenerated (with a new update id) when its inputs changed."""
        k = (listing.market, listing.id)
        state = self._books.get(k)
        if state is None:
            state = self._books[k] = BookState(last_id=1_000_000 * (listing.inst.index + 1))
            state.published_id = state.last_id
        now = self.now()
        tape = self.sim.tape(listing.symbol, now - MIN_MS, now + 1)
        key = (now // 1000, int(tape.ident[-1]) if tape.ts.size else -1)
        if key == state.key:
            return state
        raw = self.sim.order_book_at(listing.symbol, now, BOOK_LEVELS)
        pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
        bids = {fmt(p, pd): fmt(a, ad) for p, a in raw["bids"]}
        asks = {fmt(p, pd): fmt(a, ad) for p, a in raw["asks"]}
        state.touched_bids |= _touched(state.bids, bids)
        state.touched_asks |= _touched(state.asks, asks)
        state.bids, state.asks, state.key, state.ts = bids, asks, key, now
        state.last_id += 1
        return state

    def depth_snapshot(self, listing: Listing, limit: int) -> dict[str, Any]:
        """GET depth: the current book with its lastUpdateId (USD-M adds E and T)."""
        state = self.book(listing)
        body: dict[str, Any] = {"lastUpdateId": state.last_id, "bids": state.levels("bids", limit),
                                "asks": state.levels("asks", limit)}
        if listing.market == FUTURES:
            body = {"lastUpdateId": state.last_id, "E": state.ts, "T": state.ts, "bids": body["bids"],
                    "asks": body["asks"]}
        return body

    def depth_update(self, listing: Listing) -> dict[str, Any] | None:
        """The diff event since the previous one (None when nothing changed)."""
        state = self.book(listing)
        if state.last_id == state.published_id:
            return None
        b = [[p, state.bids.get(p, "0")] for p in sorted(state.touched_bids, key=float, reverse=True)]
        a = [[p, state.asks.get(p, "0")] for p in sorted(state.touched_asks, key=float)]
        first, prev = state.published_id + 1, state.published_id
        state.published_id = state.last_id
        state.touched_bids, state.touched_asks = set(), set()
        msg: dict[str, Any] = {"e": "depthUpdate", "E": state.ts, "s": listing.id, "U": first, "u": state.last_id,
                               "b": b, "a": a}
        if listing.market == FUTURES:
            msg.update({"T": state.ts, "pu": prev})
        return msg

    def partial_depth(self, listing: Listing, levels: int) -> dict[str, Any]:
        """The partial book stream (`<symbol>@depth<N>`): the top levels with lastUpdateId."""
        state = self.book(listing)
        return {"lastUpdateId": state.last_id, "bids": state.levels("bids", levels),
                "asks": state.levels("asks", levels)}

    # ----- trades -----------------------------------------------------------------------------------------------
    def new_trades(self, listing: Listing) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Trades printed since the previous call (ts, price, amount, buy, ident arrays) and advance the cursor."""
        cur = self._cursors[(listing.market, listing.id)]
        now = self.now()
        t = self.sim.tape(listing.symbol, cur.trade_ts, now + 1)
        keep = t.ident > cur.trade_ident
        out = (t.ts[keep], t.price[keep], t.amount[keep], t.buy[keep], t.ident[keep])
        if out[0].size:
            cur.trade_ts, cur.trade_ident = int(out[0][-1]), int(out[4][-1])
        return out

    def trade_events(self, listing: Listing, trades: tuple[np.ndarray, ...], agg: bool) -> list[dict[str, Any]]:
        """Trade-stream (`trade`) or aggregate-trade-stream (`aggTrade`) events for a batch of trades."""
        ts, price, amount, buy, ident = trades
        pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
        sid = listing.id
        out = []
        for t, p, a, b, i in zip(ts.tolist(), price.tolist(), amount.tolist(), buy.tolist(), ident.tolist()):
            if agg:
                out.append({"e": "aggTrade", "E": t, "s": sid, "a": i, "p": f"{p:.{pd}f}", "q": f"{a:.{ad}f}",
                            "f": i, "l": i, "T": t, "m": not b, "M": True})
            else:
                out.append({"e": "trade", "E": t, "s": sid, "t": i, "p": f"{p:.{pd}f}", "q": f"{a:.{ad}f}",
                            "T": t, "m": not b, "M": True})
        return out

    # ----- klines and mark price ---------------------------------------------------------------------------------
    def kline_events(self, listing: Listing, interval: str) -> list[dict[str, Any]]:
        """Kline events since the previous call: each bar that closed (x=true), then the forming bar (x=false)."""
        cur = self._cursors[(listing.market, listing.id)]
        step = timeframe_ms(interval)
        now = self.now()
        current = now - now % step
        start = cur.kline_open.get(interval, current)
        rows = self.sim.ohlcv_arrays(listing.symbol, interval, start, now + 1)
        cur.kline_open[interval] = current
        return [self.kline_event(listing, interval, row, closed=int(row[0]) < current, event_ts=now)
                for row in rows]

    def kline_event(self, listing: Listing, interval: str, row: Any, closed: bool, event_ts: int) -> dict[str, Any]:
        """One kline event in Binance's shape from a bar row (ts, o, h, l, c, v)."""
        step = timeframe_ms(interval)
        pd, ad = listing.inst.price_decimals, listing.inst.amount_decimals
        t = int(row[0])
        o, h, lo, c, v = (float(x) for x in row[1:6])
        k = {"t": t, "T": t + step - 1, "s": listing.id, "i": interval, "f": -1, "L": -1, "o": fmt(o, pd),
             "c": fmt(c, pd), "h": fmt(h, pd), "l": fmt(lo, pd), "v": fmt(v, ad), "n": 0, "x": closed,
             "q": fmt(v * c, 2), "V": "0", "Q": "0", "B": "0"}
        return {"e": "kline", "E": event_ts, "s": listing.id, "k": k}

    def mark_price(self, listing: Listing) -> dict[str, Any]:
        """The USD-M mark price with its funding rate (premiumIndex / markPriceUpdate fields)."""
        fr = self.sim.fetch_funding_rate(listing.symbol)
        pd = listing.inst.price_decimals
        return {"symbol": listing.id, "markPrice": fmt(fr["markPrice"], pd), "indexPrice": fmt(fr["indexPrice"], pd),
                "estimatedSettlePrice": fmt(fr["indexPrice"], pd), "lastFundingRate": f"{fr['fundingRate']:.8f}",
                "interestRate": f"{fr['interestRate']:.8f}", "nextFundingTime": int(fr["fundingTimestamp"]),
                "time": int(fr["timestamp"])}

    def mark_price_event(self, listing: Listing) -> dict[str, Any]:
        """The `markPrice` stream event."""
        m = self.mark_price(listing)
        return {"e": "markPriceUpdate", "E": m["time"], "s": listing.id, "p": m["markPrice"], "i": m["indexPrice"],
                "P": m["estimatedSettlePrice"], "r": m["lastFundingRate"], "T": m["nextFundingTime"]}

    def last_price(self, listing: Listing) -> float:
        """Price of the last trade at or before now."""
        now = self.now()
        t = self.sim.tape(listing.symbol, now - 10 * MIN_MS, now + 1)
        if t.ts.size:
            return float(t.price[-1])
        return float(self.sim.fetch_trades(listing.symbol, limit=1)[-1]["price"])


def _touched(old: dict[str, str], new: dict[str, str]) -> set[str]:
    """Price levels whose amount differs between two books (added, changed or removed)."""
    return {p for p in old.keys() | new.keys() if old.get(p) != new.get(p)}
