"""MarketStreams (ccxt.pro) against the exchange twin: streamed candles and trades land in state.db through the
ingest checks, a dropped + stale stream reconnects and is backfilled over REST, and the result equals a REST pull."""

from __future__ import annotations

from engine.data.ccxt_source import CcxtSource
from engine.data.ingest import ingest_candles
from engine.data.streams import MarketStreams, StreamedSource
from engine.runtime.streaming import StreamStatus
from engine.store import list_alerts
from engine.store import market_repo as repo
from engine.store.candles import load_candles
from tests.support.twin import start_twin
from tests.support.waiting import wait_for

MIN = 60_000


def _assert_stored_candles_equal_a_rest_pull(store, sim) -> None:  # noqa: ANN001
    """The stored 1m bars have no gap and equal a fresh pull of the same range from the venue's market."""
    stored = load_candles(store, "binance", "BTC/USDT", "1m")
    first_ts, last_ts = int(stored.index[0].value // 1_000_000), int(stored.index[-1].value // 1_000_000)
    assert repo.candle_gaps(store, "binance", "BTC/USDT", MIN, "1m", since=first_ts, until=last_ts + MIN) == []
    fresh = sim.fetch_ohlcv("BTC/USDT", "1m", since=first_ts, limit=len(stored))
    assert [[int(ts.value // 1_000_000), *row] for ts, row in zip(stored.index, stored.to_numpy().tolist())] == fresh


def test_streams_store_candles_and_trades_reconnect_and_backfill_without_gaps(tmp_path, store):
    handle = start_twin(tmp_path / "venue.db", speed=120)  # two 1m bars per wall second
    sim = handle.twin.sim
    rest = CcxtSource(handle.exchange(rateLimit=1), clock=sim.milliseconds, sleep=lambda s: None)
    alerts = []
    streams = MarketStreams(store, handle.pro_exchange, rest, ["BTC/USDT"], ["1m"], books=True, funding=True,
                            backoff_s=0.05, backoff_max_s=0.2, stale_s=2.0,
                            alert=lambda *a: alerts.append(a))
    try:
        now = sim.milliseconds()
        start = now - now % MIN - 20 * MIN
        assert ingest_candles(store, rest, "BTC/USDT", "1m", start).ok
        first_last = repo.candle_bounds(store, "binance", "BTC/USDT", "1m")[2]
        streams.start()
        wait_for(lambda: repo.candle_bounds(store, "binance", "BTC/USDT", "1m")[2] >= first_last + 3 * MIN, 30,
                 "three streamed closed bars")
        wait_for(lambda: repo.last_trade_ts(store, "binance", "BTC/USDT"), 20, "streamed trades stored")
        assert streams.healthy("ohlcv", "BTC/USDT", "1m") and streams.healthy("trades", "BTC/USDT")
        wait_for(lambda: "BTC/USDT" in streams.books and "BTC/USDT:USDT" in streams.marks, 20, "book and mark")
        view = StreamedSource(rest, streams)  # what the paper broker fills against
        book = view.fetch_order_book("BTC/USDT", 5)
        assert view.book_hits == 1 and len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
        since = repo.last_trade_ts(store, "binance", "BTC/USDT") - 30_000
        tape = view.fetch_trades("BTC/USDT", since=since)  # what live VPIN reads: the streamed tape in state.db
        assert view.trade_hits == 1 and tape and all(t["timestamp"] >= since for t in tape)
        free = CcxtSource(handle.exchange(rateLimit=1))  # no injected clock: follows the venue once it sees trades
        assert free.milliseconds() < sim.milliseconds() - 60_000  # the twin runs 120x ahead of the wall clock
        free.observe(tape[-1]["timestamp"])
        # within 2 venue minutes (1 s of wall time at 120x: a loaded CI machine lags its stored tape by that much)
        assert abs(free.milliseconds() - sim.milliseconds()) < 120_000
        rest_tape = sim.fetch_trades("BTC/USDT", since=since, limit=len(tape))
        assert [(t["id"], t["price"], t["side"]) for t in tape] == [(t["id"], t["price"], t["side"]) for t in rest_tape]
        # a stale stream (bars pass unseen), then a drop: ccxt fails, reconnects, and the gap is backfilled
        handle.set_faults(stale_streams=True)
        stale_from = repo.candle_bounds(store, "binance", "BTC/USDT", "1m")[2]
        wait_for(lambda: sim.milliseconds() > stale_from + 5 * MIN, 20, "five bars while the stream is stale")
        wait_for(lambda: not streams.healthy("trades", "BTC/USDT"), 20, "the trade stream counts as down")
        wait_for(lambda: (streams.stats["trades:BTC/USDT"].as_dict()["last_message_age_s"] or 0) > streams.stale_s,
                 20, "the trade stream silent past its stale limit")
        assert view.fetch_order_book("BTC/USDT", 5) and view.book_hits == 1  # a stale book goes to REST
        StreamStatus(streams, store, every_s=0).due()
        StreamStatus(streams, store, every_s=0).due()
        stale = [a for a in list_alerts(store) if a.rule == "stream.stale" and "trades:BTC/USDT" in a.message]
        assert len(stale) == 1 and stale[0].values["count"] == 2  # one alert naming the stream, merged
        handle.set_faults(drop_ws=True, stale_streams=False)
        wait_for(lambda: streams.stats["ohlcv:BTC/USDT:1m"].gaps_backfilled >= 3, 30, "candle gap backfilled")
        wait_for(lambda: streams.stats["trades:BTC/USDT"].backfills >= 1, 30, "trade gap backfilled")
        wait_for(lambda: streams.healthy("ohlcv", "BTC/USDT", "1m"), 20, "stream back")
        stats = {s["stream"]: s for s in streams.snapshot()}
        assert stats["ohlcv:BTC/USDT:1m"]["reconnects"] >= 1 and stats["trades:BTC/USDT"]["msgs_per_min"] > 0
    finally:
        streams.stop()
        handle.stop()
    _assert_stored_candles_equal_a_rest_pull(store, sim)
    merged = [a for a in list_alerts(store) if a.rule == "stream.disconnected"]
    assert len(alerts) >= 1 and merged == []  # alerts went to the injected sink, not the store


def test_a_drop_while_the_candle_stream_is_busy_storing_is_still_backfilled(tmp_path, store):
    """A websocket that drops while a stream's handler is busy (no watch pending, so ccxt rejects nothing for it)
    and reconnects on the next watch is still a gap: the stream backfills it over REST and stores no stale bar."""
    import threading

    busy, entered, release = threading.Event(), threading.Event(), threading.Event()

    class SlowStore(MarketStreams):
        """The candle handler blocks while `busy` is set: a slow state.db write under load."""

        def _on_candles(self, symbol, tf, rows):
            if busy.is_set():
                entered.set()
                release.wait(30)
            super()._on_candles(symbol, tf, rows)

    handle = start_twin(tmp_path / "venue.db", speed=120)
    sim = handle.twin.sim
    rest = CcxtSource(handle.exchange(rateLimit=1), clock=sim.milliseconds, sleep=lambda s: None)
    streams = SlowStore(store, handle.pro_exchange, rest, ["BTC/USDT"], ["1m"], books=False, funding=False,
                        backoff_s=0.05, backoff_max_s=0.2, stale_s=5.0)
    ohlcv = streams.stats["ohlcv:BTC/USDT:1m"]
    try:
        now = sim.milliseconds()
        assert ingest_candles(store, rest, "BTC/USDT", "1m", now - now % MIN - 5 * MIN).ok
        streams.start()
        wait_for(lambda: ohlcv.backfills >= 1 and ohlcv.messages >= 3, 30, "candle stream running")
        busy.set()
        wait_for(entered.is_set, 20, "the candle handler busy")
        backfills = ohlcv.backfills
        handle.set_faults(drop_ws=True)
        wait_for(lambda: streams.stats["trades:BTC/USDT"].reconnects >= 1, 20, "the connection dropped")
        dropped_at = sim.milliseconds()
        wait_for(lambda: sim.milliseconds() > dropped_at + 3 * MIN, 20, "three bars close during the gap")
        busy.clear()
        release.set()
        wait_for(lambda: ohlcv.backfills > backfills, 30, "the gap backfilled over REST after the silent reconnect")
        wait_for(lambda: repo.candle_bounds(store, "binance", "BTC/USDT", "1m")[2] >= dropped_at + 4 * MIN, 30,
                 "streamed bars after the gap")
    finally:
        streams.stop()
        handle.stop()
    _assert_stored_candles_equal_a_rest_pull(store, sim)
