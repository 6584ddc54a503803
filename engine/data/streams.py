"""Streaming market data through ccxt's websocket client (ccxt.pro): candles, trades, order book and mark price.

`MarketStreams` runs one asyncio loop in a background thread with one task per stream (`watch_ohlcv`,
`watch_trades`, `watch_order_book`, `watch_mark_price` for perpetuals). Candles and trades go through the same
validation and ingest as a REST pull (`ingest.store_streamed_*`). A stream that fails reconnects with exponential
backoff (capped); after each reconnect its series is backfilled over REST (`ingest_candles` / `ingest_trades` from
the last stored row), so stored candles have no holes. Per-stream statistics (connected, last message, messages per
minute, reconnects, gaps backfilled) feed `quantdesk data status`; `healthy()` tells the engine when to fall back to
REST polling. Failures raise one merged alert per stream (`merge_key`), not one per retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from engine.data.ccxt_source import AlertSink
from engine.data.ingest import ingest_candles, ingest_trades, store_streamed_candles, store_streamed_trades
from engine.store import market_repo as repo
from engine.store.db import Store

log = logging.getLogger("quantdesk.streams")
FLUSH_S = 0.1  # streamed trades are written in batches this often


@dataclass
class StreamStats:
    """What one stream has done (all times wall-clock ms)."""

    name: str
    kind: str
    symbol: str
    connected: bool = False
    last_message_ms: int | None = None
    messages: int = 0
    reconnects: int = 0
    gaps_backfilled: int = 0  # rows inserted by REST backfills after reconnects
    backfills: int = 0
    last_error: str = ""
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))

    def touch(self, n: int) -> None:
        """Count n messages (items) received now."""
        now = time.time()
        self.connected = True
        self.last_message_ms = int(now * 1000)
        self.messages += n
        self.recent.extend([now] * min(n, 2000))

    def per_minute(self) -> float:
        """Messages (items) in the last 60 s."""
        cutoff = time.time() - 60
        while self.recent and self.recent[0] < cutoff:
            self.recent.popleft()
        return float(len(self.recent))

    def as_dict(self) -> dict[str, Any]:
        """Plain values for status displays."""
        age = None if self.last_message_ms is None else round(time.time() - self.last_message_ms / 1000, 1)
        return {"stream": self.name, "kind": self.kind, "symbol": self.symbol, "connected": self.connected,
                "last_message_age_s": age, "msgs_per_min": self.per_minute(), "messages": self.messages,
                "reconnects": self.reconnects, "gaps_backfilled": self.gaps_backfilled, "backfills": self.backfills,
                "last_error": self.last_error}


class MarketStreams:
    """The engine's websocket market data: one loop thread, one task per stream, REST backfill after gaps."""

    def __init__(self, store: Store, make_exchange: Callable[[], Any], rest_source: Any, symbols: list[str],
                 timeframes: list[str], *, trades: bool = True, books: bool = True, funding: bool = True,
                 alert: AlertSink | None = None, backoff_s: float = 0.25, backoff_max_s: float = 30.0,
                 stale_s: float = 30.0) -> None:
        self.store = store
        self._make_exchange = make_exchange
        self.rest = rest_source
        self.exchange_id: str = rest_source.id
        self.alert = alert
        self.backoff_s, self.backoff_max_s, self.stale_s = backoff_s, backoff_max_s, stale_s
        self.symbols, self.timeframes = list(symbols), list(timeframes)
        self.stats: dict[str, StreamStats] = {}
        self.books: dict[str, dict[str, Any]] = {}  # symbol -> latest streamed order book
        self.marks: dict[str, dict[str, Any]] = {}  # perp symbol -> latest mark price / funding
        self._plan: list[tuple[str, str, str | None]] = []
        self._pending: dict[str, list[dict[str, Any]]] = {s: [] for s in self.symbols}
        for symbol in self.symbols:
            self._plan += [("ohlcv", symbol, tf) for tf in self.timeframes]
            if trades:
                self._plan.append(("trades", symbol, None))
            if books:
                self._plan.append(("book", symbol, None))
        if funding:
            from engine.data.symbols import perp_symbol

            self._plan += [("mark", p, None) for p in dict.fromkeys(perp_symbol(s) for s in self.symbols)]
        for kind, symbol, tf in self._plan:
            name = f"{kind}:{symbol}" + (f":{tf}" if tf else "")
            self.stats[name] = StreamStats(name, kind, symbol)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._exchange: Any = None
        self._epochs = 0  # websocket connections seen (each ccxt client object is one connection)

    # ----- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> "MarketStreams":
        """Start the loop thread and every stream task."""
        self._thread = threading.Thread(target=self._run, name="market-streams", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every stream and close the websocket client."""
        self._stop.set()
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(self._loop)])
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._exchange = self._make_exchange()
        # ccxt keeps the last `tradesLimit` trades per symbol between two watch calls; a burst larger than that
        # would be lost before the next call, so keep a generous cache (the writer drains it every FLUSH_S)
        self._exchange.options["tradesLimit"] = max(50_000, int(self._exchange.options.get("tradesLimit", 0)))
        try:
            await asyncio.gather(self._writer(), *(self._supervise(kind, symbol, tf)
                                                   for kind, symbol, tf in self._plan))
        finally:
            try:
                await self._exchange.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not mask the stop
                log.debug("closing the websocket client failed", exc_info=True)

    # ----- status -----------------------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every stream's statistics."""
        return [s.as_dict() for s in self.stats.values()]

    def healthy(self, kind: str, symbol: str, timeframe: str | None = None) -> bool:
        """Whether a stream is connected and has delivered within `stale_s` (else the engine polls REST)."""
        st = self.stats.get(f"{kind}:{symbol}" + (f":{timeframe}" if timeframe else ""))
        if st is None or not st.connected or st.last_message_ms is None:
            return False
        return time.time() - st.last_message_ms / 1000 < self.stale_s

    # ----- one stream -------------------------------------------------------------------------------------------
    async def _supervise(self, kind: str, symbol: str, tf: str | None) -> None:
        """Watch one stream forever: handle messages, reconnect with backoff, backfill after each gap (the first
        connect counts as one: bars that closed between the last REST pull and the subscription are not streamed)."""
        st = self.stats[f"{kind}:{symbol}" + (f":{tf}" if tf else "")]
        watch, handle = self._handlers(kind, symbol, tf)
        attempt, had_gap = 0, True  # a stream starts at subscription: what closed before is backfilled over REST
        seen: dict[str, int] = {}  # websocket url -> the connection this stream last read from
        while not self._stop.is_set():
            try:
                data = await watch()
                if self._connection_replaced(seen) and not had_gap:
                    # the socket dropped while this stream had no watch pending (its handler was busy), so ccxt
                    # failed nothing for it and reconnected on this watch: still a gap, and cached bars are stale
                    had_gap = True
                    st.reconnects += 1
                    log.warning("stream %s: its websocket reconnected under it; backfilling the gap", st.name)
                    if kind == "ohlcv":
                        (getattr(self._exchange, "ohlcvs", None) or {}).get(symbol, {}).pop(tf, None)
                        data = []  # the cache held the bar that was forming at the drop: never store it as closed
                if kind == "ohlcv":
                    self._observe_bar_time(data)
                if had_gap:
                    had_gap = not await self._backfill(kind, symbol, tf, st)  # a failed backfill is retried
                attempt = 0
                st.touch(len(data) if isinstance(data, list) else 1)
                if kind == "trades":
                    handle(data)  # queued for the writer: the next watch call starts at once
                else:
                    await asyncio.to_thread(handle, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is a reconnect, an alert and a backoff
                st.connected, had_gap = False, True
                st.reconnects += 1
                if kind == "ohlcv":  # the cached forming bar is stale now: never store it as closed later
                    (getattr(self._exchange, "ohlcvs", None) or {}).get(symbol, {}).pop(tf, None)
                st.last_error = f"{type(exc).__name__}: {exc}"[:300]
                delay = min(self.backoff_max_s, self.backoff_s * (2 ** min(attempt, 16)))
                attempt += 1
                log.warning("stream %s: %s; reconnect %d in %.2fs", st.name, st.last_error, attempt, delay)
                if self.alert is not None:
                    self.alert("warning", "stream.disconnected", f"{self.exchange_id} stream {st.name} failed: "
                               f"{st.last_error}", {"stream": st.name, "exchange": self.exchange_id,
                                                    "merge_key": f"{self.exchange_id}:{st.name}"})
                await asyncio.sleep(delay)

    def _observe_bar_time(self, rows: Any) -> None:
        """Move the market clock to the newest bar's open time a candle message shows (the venue's now is at least
        that) before a reconnect's backfill: after a gap in messages the clock only extrapolated at 1x, so against a
        venue running ahead of the wall clock (the twin at --speed 20) the bars that closed while the stream was down
        looked still open, the REST backfill skipped them, and the stream's next bars left a hole behind them.
        Trades move the clock in the writer, once they are stored, so the clock never runs ahead of the stored tape."""
        stamps = [r[0] for r in rows if r and isinstance(r[0], (int, float))] if isinstance(rows, list) else []
        if stamps and hasattr(self.rest, "observe"):
            self.rest.observe(int(max(stamps)))

    def _connection_replaced(self, seen: dict[str, int]) -> bool:
        """Whether a websocket connection this stream read from before has been replaced by a new one since (ccxt
        drops a client closed by the server and opens a new one on the next watch); updates `seen`."""
        replaced = False
        for url, client in list((getattr(self._exchange, "clients", None) or {}).items()):
            epoch = getattr(client, "_quantdesk_epoch", None)
            if epoch is None:
                self._epochs += 1
                epoch = self._epochs
                client._quantdesk_epoch = epoch
            replaced = replaced or seen.get(url, epoch) != epoch
            seen[url] = epoch
        return replaced

    def _handlers(self, kind: str, symbol: str, tf: str | None) -> tuple[Callable[[], Awaitable[Any]],
                                                                      Callable[[Any], None]]:
        ex = self._exchange
        if kind == "ohlcv":
            assert tf is not None

            async def watch_ohlcv() -> Any:
                await ex.watch_ohlcv(symbol, tf)
                return list(ex.ohlcvs[symbol][tf])  # the whole cache: the closed bar and the forming one
            return watch_ohlcv, lambda rows: self._on_candles(symbol, tf, rows)
        if kind == "trades":
            return (lambda: ex.watch_trades(symbol)), lambda trades: self._pending[symbol].extend(trades)
        if kind == "book":
            return (lambda: ex.watch_order_book(symbol)), lambda book: self.books.__setitem__(symbol, {
                "symbol": symbol, "bids": [list(x) for x in book["bids"][:50]],
                "asks": [list(x) for x in book["asks"][:50]], "timestamp": book["timestamp"],
                "nonce": book.get("nonce")})
        return (lambda: ex.watch_mark_price(symbol)), lambda mark: self.marks.__setitem__(symbol, dict(mark))

    def _on_candles(self, symbol: str, tf: str, rows: list[list[Any]]) -> None:
        if len(rows) < 2:
            return
        forming = max(r[0] for r in rows)
        report = store_streamed_candles(self.store, self.exchange_id, symbol, tf, rows, forming)
        if report.quarantined:
            log.warning("stream candles %s %s: %s", symbol, tf, report.summary())

    async def _writer(self) -> None:
        """Write queued trades in batches (one validation + transaction per symbol per FLUSH_S)."""
        while True:
            await asyncio.sleep(FLUSH_S)
            for symbol, pending in self._pending.items():
                if pending:
                    batch, self._pending[symbol] = pending, []
                    try:
                        await asyncio.to_thread(store_streamed_trades, self.store, self.exchange_id, symbol, batch)
                        newest = max((t.get("timestamp") or 0 for t in batch), default=0)
                        if newest and hasattr(self.rest, "observe"):
                            self.rest.observe(int(newest))  # the market clock follows the venue
                    except Exception:  # noqa: BLE001 - a failed write is retried with the next batch
                        log.exception("storing %d streamed %s trades failed", len(batch), symbol)
                        self._pending[symbol] = batch + self._pending[symbol]

    async def _backfill(self, kind: str, symbol: str, tf: str | None, st: StreamStats) -> bool:
        """REST backfill of the gap a disconnect left (candles, trades; books and marks need none); True when done."""
        def run() -> tuple[int, bool]:
            if kind == "ohlcv":
                assert tf is not None
                _first, last = repo.candle_span(self.store, self.exchange_id, symbol, tf)
                if last is None:
                    return 0, True
                rep = ingest_candles(self.store, self.rest, symbol, tf, last)
                return rep.inserted, rep.ok
            if kind == "trades":
                last = repo.last_trade_ts(self.store, self.exchange_id, symbol)
                if last is None:
                    return 0, True
                rep = ingest_trades(self.store, self.rest, symbol, last)
                return rep.inserted, rep.ok
            return 0, True
        inserted, ok = await asyncio.to_thread(run)
        st.backfills += 1
        st.gaps_backfilled += inserted
        log.info("stream %s: backfilled %d rows over REST after (re)connecting (%s)", st.name, inserted,
                 "complete" if ok else "source failed; retried at the next message")
        return ok


class StreamedSource:
    """A MarketSource view over the streams: `fetch_order_book` from the live book stream and `fetch_trades` from
    the streamed tape stored in state.db while those streams are healthy (so the paper broker fills against the
    streamed book and live VPIN runs on the streamed tape); everything else, and any stale stream, goes to REST."""

    def __init__(self, rest: Any, streams: MarketStreams) -> None:
        self._rest = rest
        self._streams = streams
        self.id = rest.id
        self.book_hits = 0
        self.trade_hits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rest, name)

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """The streamed book (top `limit` levels) when its stream is healthy, else a REST snapshot."""
        book = self._streams.books.get(symbol)
        if book is not None and self._streams.healthy("book", symbol):
            self.book_hits += 1
            n = limit or len(book["bids"])
            return {**book, "bids": book["bids"][:n], "asks": book["asks"][:n]}
        return self._rest.fetch_order_book(symbol, limit)

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Streamed trades from state.db when the trade stream is healthy and `since` is given, else REST."""
        if since is not None and self._streams.healthy("trades", symbol):
            self.trade_hits += 1
            return repo.stored_trades(self._streams.store, self.id, symbol, since, limit or 100_000)
        return self._rest.fetch_trades(symbol, since, limit)
