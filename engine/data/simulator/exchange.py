"""`SimulatedExchange`: the MarketSource over the simulated world, in ccxt's unified shapes, historical and live.

Simulated now = anchor + (clock() - anchor) * speed, with anchor = clock() at construction. Nothing after simulated
now is returned. Generated days and tapes are cached in memory (cache.py), shared per (seed, start price).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from engine.clock import timeframe_ms
from engine.data.simulator import funding as fund
from engine.data.simulator.events import MIN_MS
from engine.data.simulator.exchange_support import aggregate, check_limit, iso8601, store_for
from engine.data.simulator.feeds import SimFeed
from engine.data.simulator.markets import DEFAULT_SYMBOLS, Instrument, build_instruments, market_dict
from engine.data.simulator.microstructure import Tape, order_book
from engine.data.simulator.world import DAY_MS, EPOCH_MS, HOUR_MS, REGIMES, World

if TYPE_CHECKING:
    import pandas as pd

TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")


class SimulatedExchange:
    """A seeded, deterministic simulated crypto exchange (spot + perps) implementing `MarketSource`."""

    id = "sim"
    name = "Simulated Exchange"

    def __init__(self, seed: int = 7, symbols: Sequence[str] | None = None, speed: float = 1.0,
                 history_days: int = 30, clock: Callable[[], float] | None = None,
                 start_price_btc: float = 60000.0, shared_cache: bool = True) -> None:
        """Create the exchange; the same seed always gives the same world, whatever the clock or speed.

        With shared_cache, instances with the same seed and start price in one process share the generated world
        and its day/trade caches (the data are pure functions of seed and time, so sharing changes nothing but
        speed); shared_cache=False builds a private world (determinism tests use it).
        """
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed > 0:
            raise ValueError(f"speed: must be a positive number, got {speed!r}")
        if isinstance(history_days, bool) or not isinstance(history_days, int) or history_days < 0:
            raise ValueError(f"history_days: must be a non-negative integer, got {history_days!r}")
        self._instruments = build_instruments(start_price_btc)
        btc = next(i.underlying for i in self._instruments.values() if i.underlying.base == "BTC")
        self._all = tuple(sorted(self._instruments.values(), key=lambda i: i.index))
        self._store = store_for(int(seed), btc, self._all, shared_cache)
        self._world = self._store.world
        chosen = list(DEFAULT_SYMBOLS if symbols is None else symbols)
        for sym in chosen:
            if sym not in self._instruments:
                raise ValueError(f"symbols: unknown symbol {sym!r} (available: {', '.join(DEFAULT_SYMBOLS)})")
        self.symbols = chosen
        self.markets = {s: market_dict(self._instruments[s]) for s in chosen}
        self.timeframes = {tf: tf for tf in TIMEFRAMES}
        self.seed = int(seed)
        self.speed = float(speed)
        self.history_days = history_days
        self._clock = clock or time.time
        self._anchor = float(self._clock())

    # ----- time and markets -------------------------------------------------------------------------------------
    def milliseconds(self) -> int:
        """Simulated now in epoch ms."""
        wall = float(self._clock())
        return int((self._anchor + (wall - self._anchor) * self.speed) * 1000)

    def history_start(self) -> int:
        """Start (ms) of the default backfill window, history_days before simulated now (older data exists too)."""
        return max(EPOCH_MS, self.milliseconds() - self.history_days * DAY_MS)

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """The market structures keyed by symbol (ccxt compatible)."""
        return self.markets

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market structure for `symbol`."""
        if symbol not in self.markets:
            raise ValueError(f"symbol: unknown symbol {symbol!r} (available: {', '.join(self.symbols)})")
        return self.markets[symbol]

    def _inst(self, symbol: str) -> Instrument:
        """The instrument behind a listed symbol."""
        self.market(symbol)
        return self._instruments[symbol]

    # ----- generated arrays (fast bulk paths) -------------------------------------------------------------------
    def _days(self, since: int, until: int) -> range:
        """Day indices overlapping [since, until)."""
        return range((since - EPOCH_MS) // DAY_MS, (until - 1 - EPOCH_MS) // DAY_MS + 1)

    def minute_arrays(self, symbol: str, since: int, until: int) -> dict[str, np.ndarray]:
        """Complete 1m bars and truth with open time in [since, until) as arrays (no forming-bar handling).

        Keys: ts, open, high, low, close, volume, buy_frac (taker-buy share of volume), sigma, regime (int code
        into REGIMES), informed, side, stress. `until` is clipped to the current (forming) minute's open.
        """
        idx = self._inst(symbol).index
        since = max(int(since), EPOCH_MS)
        now = self.milliseconds()
        until = min(int(until), now - now % MIN_MS)
        names = ("open", "high", "low", "close", "volume", "buy_frac", "sigma")
        shared = ("ts", "regime", "informed", "side", "stress")
        if until <= since:
            return {k: np.zeros(0) for k in names + shared}
        parts: dict[str, list[np.ndarray]] = {k: [] for k in names + shared}
        for day in self._days(since, int(until)):
            com, bars = self._store.common(day), self._store.bars(idx, day)
            lo, hi = int(np.searchsorted(com.ts, since)), int(np.searchsorted(com.ts, until))
            for name in names:
                parts[name].append(getattr(bars, name)[lo:hi])
            for name in shared:
                parts[name].append(getattr(com, name)[lo:hi])
        return {k: np.concatenate(v) for k, v in parts.items()}

    def tape(self, symbol: str, since: int, until: int) -> Tape:
        """All trades with timestamp in [since, until) as arrays; `until` is clipped to simulated now + 1 ms."""
        idx = self._inst(symbol).index
        since, until = max(int(since), EPOCH_MS), min(int(until), self.milliseconds() + 1)
        if until <= since:
            e = np.zeros(0)
            return Tape(e.astype(np.int64), e, e, e.astype(bool), e.astype(np.int64))
        parts = []
        for day in self._days(since, until):
            t = self._store.tape(idx, day)
            lo, hi = int(np.searchsorted(t.ts, since)), int(np.searchsorted(t.ts, until))
            parts.append(Tape(t.ts[lo:hi], t.price[lo:hi], t.amount[lo:hi], t.buy[lo:hi], t.ident[lo:hi]))
        return Tape(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ts", "price", "amount", "buy",
                                                                               "ident")))

    def _minute_rows(self, symbol: str, since: int, until: int, now: int) -> np.ndarray:
        """1m rows in [since, until): complete minutes, then the forming minute from the trades printed so far."""
        cur_min = now - now % MIN_MS
        m = self.minute_arrays(symbol, since, min(until, cur_min))
        rows = np.column_stack([m["ts"], m["open"], m["high"], m["low"], m["close"], m["volume"]]) \
            if m["ts"].size else np.zeros((0, 6))
        if since <= cur_min < until:
            t = self.tape(symbol, cur_min, now + 1)
            if t.ts.size:
                dec = self._inst(symbol).amount_decimals
                rows = np.vstack([rows, [cur_min, t.price[0], t.price.max(), t.price.min(), t.price[-1],
                                         round(float(t.amount.sum()), dec)]])
        return rows

    # ----- MarketSource -----------------------------------------------------------------------------------------
    def ohlcv_arrays(self, symbol: str, timeframe: str, since: int, until: int) -> np.ndarray:
        """Bars (rows ts, o, h, l, c, v) with open time in [since, until) clipped to now; the last may be forming.

        Hourly and longer bars are aggregated from cached hourly aggregates of the 1m bars (the same numbers as
        aggregating the 1m bars directly), so a year of 1h bars costs one pass of minute generation at most.
        """
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"timeframe: unsupported {timeframe!r} (supported: {', '.join(TIMEFRAMES)})")
        step = timeframe_ms(timeframe)
        idx = self._inst(symbol).index
        dec = self._inst(symbol).amount_decimals
        now = self.milliseconds()
        since = max(int(since), EPOCH_MS)
        since = since + (-(since - EPOCH_MS)) % step  # first bar opening at or after since
        until = min(int(until), now + 1)
        if until <= since:
            return np.zeros((0, 6))
        end = until + (-(until - EPOCH_MS)) % step  # minutes up to the end of the last requested bar
        if step < HOUR_MS:
            rows = self._minute_rows(symbol, since, end, now)
        else:
            cur_day = (now - EPOCH_MS) // DAY_MS
            blocks = []
            for day in self._days(since, end):
                if day < cur_day:
                    blocks.append(self._store.hourly(idx, day))
                else:
                    d0 = EPOCH_MS + day * DAY_MS
                    minute = self._minute_rows(symbol, d0, min(end, d0 + DAY_MS), now)
                    blocks.append(aggregate(minute, HOUR_MS, dec) if minute.shape[0] else np.zeros((0, 6)))
            rows = np.vstack(blocks) if blocks else np.zeros((0, 6))
        if step > MIN_MS and rows.shape[0]:
            rows = aggregate(rows, step, dec)
        return rows[(rows[:, 0] >= since) & (rows[:, 0] < until)]

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    limit: int | None = None) -> list[list[float]]:
        """Candles oldest first; the last one is the currently forming bar (built from trades printed so far).

        since=None returns the most recent `limit` bars (default 1000); otherwise the first `limit` bars opening at
        or after `since`.
        """
        limit = check_limit(limit)
        step = timeframe_ms(timeframe)
        now = self.milliseconds()
        if since is None:
            start = now - now % step - (limit - 1) * step
            rows = self.ohlcv_arrays(symbol, timeframe, start, now + 1)[-limit:]
        else:
            start = max(int(since), EPOCH_MS)  # the simulated market opens at the epoch
            rows = self.ohlcv_arrays(symbol, timeframe, start, start + (limit + 1) * step)[:limit]
        return [[int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])] for r in rows]

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Public trades (taker side) oldest first: from `since`, or the most recent `limit` (default 1000)."""
        limit = check_limit(limit)
        now = self.milliseconds()
        if since is None:
            t, start = None, now + 1
            while t is None or (t.ts.size < limit and start > EPOCH_MS):
                start = max(EPOCH_MS, start - 30 * MIN_MS)
                t = self.tape(symbol, start, now + 1)
            sl = slice(max(0, t.ts.size - limit), t.ts.size)
        else:
            span = 60 * MIN_MS
            while True:  # widen the window geometrically until it holds `limit` trades or reaches now
                end = min(now + 1, int(since) + span)
                t = self.tape(symbol, int(since), end)
                if t.ts.size >= limit or end == now + 1:
                    break
                span *= 2
            sl = slice(0, min(limit, t.ts.size))
        return [{"id": str(int(i)), "order": None, "timestamp": int(ts), "datetime": iso8601(int(ts)),
                 "symbol": symbol, "type": None, "side": "buy" if b else "sell", "takerOrMaker": "taker",
                 "price": float(p), "amount": float(a), "cost": float(p) * float(a), "fee": None, "fees": [],
                 "info": {}}
                for i, ts, p, a, b in zip(t.ident[sl], t.ts[sl], t.price[sl], t.amount[sl], t.buy[sl])]

    def order_book_at(self, symbol: str, ts: int, limit: int | None = None) -> dict[str, Any]:
        """The order book at time `ts` (not after now): around the last trade, worse under stress."""
        inst = self._inst(symbol)
        ts = int(ts)
        if ts > self.milliseconds():
            raise ValueError(f"ts: {ts} is after simulated now")
        if ts < EPOCH_MS + MIN_MS:
            raise ValueError(f"ts: {ts} is before the simulated market opened (epoch {EPOCH_MS})")
        minute = ts - (ts - EPOCH_MS) % MIN_MS
        t = self.tape(symbol, minute, ts + 1)
        if t.ts.size == 0:
            t = self.tape(symbol, minute - MIN_MS, minute)
        common = self._store.common((minute - EPOCH_MS) // DAY_MS)
        stress = float(common.stress[((minute - EPOCH_MS) % DAY_MS) // MIN_MS])
        bids, asks = order_book(inst, self.seed, ts, float(t.price[-1]), bool(t.buy[-1]), stress,
                                25 if limit is None else int(limit))
        return {"symbol": symbol, "bids": bids, "asks": asks, "timestamp": ts, "datetime": iso8601(ts),
                "nonce": ts}

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """The order book at simulated now (25 levels unless `limit` is given)."""
        return self.order_book_at(symbol, self.milliseconds(), limit)

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        """Last price and best bid/ask at simulated now (ccxt ticker subset)."""
        book = self.fetch_order_book(symbol, 1)
        last = self.fetch_trades(symbol, limit=1)[-1]
        ts = book["timestamp"]
        return {"symbol": symbol, "timestamp": ts, "datetime": iso8601(ts), "last": last["price"],
                "close": last["price"], "bid": book["bids"][0][0], "bidVolume": book["bids"][0][1],
                "ask": book["asks"][0][0], "askVolume": book["asks"][0][1], "info": {}}

    def _perp_index(self, symbol: str) -> int:
        """Underlying index of a perpetual symbol; spot symbols are rejected."""
        inst = self._inst(symbol)
        if not inst.is_perp:
            raise ValueError(f"symbol: {symbol!r} is spot; funding exists only for perpetuals like 'BTC/USDT:USDT'")
        return [u.base for u in self._world.und].index(inst.underlying.base)

    def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        """The predicted rate of the next funding, with mark (perp) and index (spot) prices at now."""
        s = self._perp_index(symbol)
        now = self.milliseconds()
        if now < EPOCH_MS + MIN_MS:
            raise ValueError(f"now: {now} is before the simulated market opened (epoch {EPOCH_MS})")
        rate, nxt = fund.predicted_rate(self._world, s, now)
        spot = f"{self._world.und[s].base}/USDT"
        mark = self._last_price(symbol, now)
        index = self._last_price(spot, now)
        prev = fund.settled_rates(self._world, s, np.array([nxt - fund.FUNDING_INTERVAL_MS], np.int64)) \
            if nxt - fund.FUNDING_INTERVAL_MS > EPOCH_MS else np.array([None])
        return {"info": {}, "symbol": symbol, "markPrice": mark, "indexPrice": index, "interestRate": fund.INTEREST,
                "estimatedSettlePrice": None, "timestamp": now, "datetime": iso8601(now), "fundingRate": rate,
                "fundingTimestamp": nxt, "fundingDatetime": iso8601(nxt), "nextFundingRate": None,
                "nextFundingTimestamp": None, "nextFundingDatetime": None,
                "previousFundingRate": None if prev[0] is None else float(prev[0]),
                "previousFundingTimestamp": nxt - fund.FUNDING_INTERVAL_MS,
                "previousFundingDatetime": iso8601(nxt - fund.FUNDING_INTERVAL_MS), "interval": "8h"}

    def _last_price(self, symbol: str, now: int) -> float:
        """Price of the last trade at or before `now` (works for unlisted sibling symbols too)."""
        inst = self._instruments[symbol]
        minute = now - (now - EPOCH_MS) % MIN_MS
        tape = self._store.tape(inst.index, (minute - EPOCH_MS) // DAY_MS)
        k = int(np.searchsorted(tape.ts, now, side="right")) - 1
        return float(tape.price[k]) if k >= 0 else float(self._store.bars(inst.index,
                                                                           (minute - EPOCH_MS) // DAY_MS).open[0])

    def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                   limit: int | None = None) -> list[dict[str, Any]]:
        """Settled funding rates oldest first: from `since`, or the most recent `limit` (default 1000)."""
        s = self._perp_index(symbol)
        limit = check_limit(limit)
        now = self.milliseconds()
        if since is None:
            times = fund.funding_times(now - limit * fund.FUNDING_INTERVAL_MS, now)[-limit:]
        else:
            times = fund.funding_times(int(since), min(now, int(since) + limit * fund.FUNDING_INTERVAL_MS))[:limit]
        rates = fund.settled_rates(self._world, s, times)
        return [{"info": {}, "symbol": symbol, "fundingRate": float(r), "timestamp": int(t),
                 "datetime": iso8601(int(t))} for t, r in zip(times, rates)]

    # ----- feeds and ground truth -------------------------------------------------------------------------------
    def feed_source(self, feed: str) -> SimFeed:
        """A FeedSource for "macro", "sentiment" or "onchain" over this world, publishing as of simulated now."""
        return SimFeed(self._world, feed, self.milliseconds)

    def truth(self, symbol: str, since: int, until: int) -> "pd.DataFrame":
        """Ground truth per minute in [since, until) (not after now): regime, informed flow, stress, volatility."""
        import pandas as pd

        until = min(int(until), self.milliseconds() - self.milliseconds() % MIN_MS)
        m = self.minute_arrays(symbol, int(since), until)
        idx = pd.DatetimeIndex(pd.to_datetime(m["ts"].astype(np.int64), unit="ms", utc=True), name="ts")
        return pd.DataFrame({"regime": pd.Categorical.from_codes(m["regime"].astype(np.int8), REGIMES),
                             "informed": m["informed"], "informed_side": m["side"].astype(np.int8),
                             "stress": m["stress"], "sigma": m["sigma"], "buy_frac": m["buy_frac"]}, index=idx)

    def events(self, since: int, until: int) -> "pd.DataFrame":
        """Informed-flow episodes whose flow starts in [since, until) and has begun by now, with their moves."""
        import pandas as pd

        until = min(int(until), self.milliseconds())
        ev = self._world.events_between(int(since), until)
        keep = (ev.start >= int(since)) & (ev.start < until)
        start = ev.start[keep]
        move = start + ev.lead[keep] * MIN_MS
        return pd.DataFrame({"flow_start": start, "move_start": move,
                             "move_end": move + ev.duration[keep] * MIN_MS,
                             "kind": np.where(ev.kind[keep] == 0, "crash", "pump"), "size": ev.size[keep],
                             "lead_min": ev.lead[keep], "duration_min": ev.duration[keep]})

    def ohlcv_frame(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    until: int | None = None) -> "pd.DataFrame":
        """Bars in [since, until) as a frame indexed by UTC `ts` (fast bulk path; same values as fetch_ohlcv)."""
        import pandas as pd

        now = self.milliseconds()
        rows = self.ohlcv_arrays(symbol, timeframe, self.history_start() if since is None else int(since),
                                 now + 1 if until is None else int(until))
        idx = pd.DatetimeIndex(pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms", utc=True), name="ts")
        return pd.DataFrame(rows[:, 1:], index=idx, columns=["open", "high", "low", "close", "volume"])

    def trades_frame(self, symbol: str, since: int, until: int) -> "pd.DataFrame":
        """Trades in [since, until) (not after now) as a frame: timestamp, id (int64), price, amount, side.

        The fast bulk path for research and tests; `fetch_trades` gives the same trades as ccxt dicts (ids as str).
        """
        import pandas as pd

        t = self.tape(symbol, int(since), min(int(until), self.milliseconds() + 1))
        return pd.DataFrame({"timestamp": t.ts, "id": t.ident, "price": t.price, "amount": t.amount,
                             "side": np.where(t.buy, "buy", "sell")})

    @property
    def world(self) -> World:
        """The coarse world (regimes, events) behind this exchange."""
        return self._world
