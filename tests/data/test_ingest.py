"""Ingest: incremental, idempotent, gap backfill, exact reports, quarantine of bad rows with alerts."""

from __future__ import annotations

import json

from engine.data.ingest import find_gaps, ingest_candles, ingest_feed, ingest_funding, ingest_order_book, ingest_trades
from engine.data.source import FeedPoint
from engine.store import list_alerts
from engine.store.candles import load_candles
from engine.store.market_repo import list_quarantine

MIN = 60_000
T0 = 1_704_067_200_000


def _count(store, table: str) -> int:
    with store.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar())


def test_first_run_stores_only_closed_bars_and_second_run_changes_nothing(store, fake_market, report):
    progress = []
    first = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0, progress=lambda d, t: progress.append((d, t)))
    assert first.ok and first.new_after_end == 180 and first.inserted == 180
    assert first.outside_range == 1  # the bar open at `now` is not stored
    df = load_candles(store, "fake", "BTC/USDT", "1m")
    assert len(df) == 180 and df.index[-1].value // 1_000_000 == T0 + 179 * MIN
    assert progress[-1] == (180, 180)

    calls_before = len(fake_market.calls)
    second = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    assert (second.inserted, second.changed, second.quarantined) == (0, 0, 0)
    assert len(fake_market.calls) == calls_before  # nothing was missing, so nothing was fetched
    assert _count(store, "candles") == 180

    verify = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0, full=True)
    assert (verify.inserted, verify.changed, verify.unchanged) == (0, 0, 180)
    report("ingest idempotency", {"first_inserted": first.inserted, "second_inserted": second.inserted,
                                  "verify_unchanged": verify.unchanged})


def test_a_minute_later_exactly_one_new_bar_after_the_previous_end(store, fake_market):
    ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    fake_market.now += MIN
    rep = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    assert (rep.gaps_filled, rep.backfilled_before_start, rep.new_after_end, rep.changed) == (0, 0, 1, 0)
    assert "rows inserted: 0 in or before the already-stored range (0 gap rows filled), 1 new after the previous " \
           "end, 0 changed" in rep.summary()


def test_gaps_are_found_and_backfilled_when_the_venue_has_the_bars(store, fake_market):
    fake_market.missing = {T0 + 10 * MIN, T0 + 11 * MIN, T0 + 50 * MIN}
    rep = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    assert rep.gaps_remaining == 3
    gaps = find_gaps(store, "fake", "BTC/USDT", "1m")
    assert [(g.start_ts, g.end_ts, g.missing_bars) for g in gaps] == [
        (T0 + 10 * MIN, T0 + 11 * MIN, 2), (T0 + 50 * MIN, T0 + 50 * MIN, 1)]
    # a range that starts or ends inside a gap still sees it (the neighbours outside the range are scanned too)
    from engine.store.market_repo import candle_gaps
    inside = candle_gaps(store, "fake", "BTC/USDT", MIN, "1m", since=T0 + 11 * MIN, until=T0 + 51 * MIN)
    assert [(g.start_ts, g.end_ts) for g in inside] == [(T0 + 11 * MIN, T0 + 11 * MIN), (T0 + 50 * MIN, T0 + 50 * MIN)]
    assert candle_gaps(store, "fake", "BTC/USDT", MIN, "1m", since=T0 + 12 * MIN, until=T0 + 50 * MIN) == []
    fake_market.missing = set()
    fill = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    assert (fill.gaps_filled, fill.new_after_end, fill.gaps_remaining) == (3, 0, 0)
    assert find_gaps(store, "fake", "BTC/USDT", "1m") == []
    # backfilling an earlier start fetches only the head
    head = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0 - 30 * MIN)
    assert (head.backfilled_before_start, head.gaps_filled, head.new_after_end) == (30, 0, 0)


def test_revised_bar_is_counted_as_changed(store, fake_market):
    ingest_candles(store, fake_market, "BTC/USDT", "1m", T0)
    bar = fake_market.bar("BTC/USDT", T0 + 5 * MIN)
    bar[5] = bar[5] + 1.0  # the venue revised the volume
    fake_market.overrides[T0 + 5 * MIN] = bar
    rep = ingest_candles(store, fake_market, "BTC/USDT", "1m", T0, full=True)
    assert (rep.changed, rep.inserted, rep.unchanged) == (1, 0, 179)


def test_pagination_over_small_pages(store, fake_market):
    fake_market.page_cap = 40
    rep = ingest_candles(store, fake_market, "ETH/USDT", "1m", T0)
    assert rep.inserted == 180 and rep.requests == 5  # 40+40+40+40+21 (the last includes the open bar)


def test_bad_rows_of_every_kind_are_quarantined_with_reasons_and_good_rows_stored(store, report):
    nan = float("nan")
    good_ts = T0 + 200 * MIN
    # One batch from the source: good bars with broken rows of 11 kinds in between.
    broken = [
        ["abc", 100, 101, 99, 100, 1],  # 1 unreadable timestamp
        [T0 + 1 * MIN, nan, 101, 99, 100, 1],  # 2 NaN
        [T0 + 2 * MIN, 0.0, 101, 0.0, 100, 1],  # 3 non-positive price
        [T0 + 3 * MIN, 100, 98, 99, 100, 1],  # 4 high < low
        [T0 + 4 * MIN, 100, 101, 99, 100, -5],  # 5 negative volume
        [T0 + 5 * MIN, 100, 101, 99, 100, 1],  # good
        [T0 + 5 * MIN, 100, 101, 99, 100.5, 1],  # 6 duplicate ts with different values
        [T0 + 5 * MIN, 100, 101, 99, 100, 1],  # exact duplicate: counted, not an error
        [T0 + 4 * MIN + 0, 100, 101, 99, 100, 2],  # 7 out of order
        [T0 + 6 * MIN + 17, 100, 101, 99, 100, 1],  # 8 misaligned timestamp
        [T0 + 7 * MIN, 100, 101, 99, float("inf"), 1],  # 9 infinite
        [T0 + 8 * MIN, 100, 101, 99],  # 10 missing fields
        [T0 + 9 * MIN, 120, 101, 99, 100, 1],  # 11 open above high
        [T0 + 9 * MIN, 100, 101, 99, 100, 1],  # good (first valid version of this ts)
    ]

    class BrokenSource:
        id = "broken"

        def milliseconds(self) -> int:
            return good_ts

        def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None):
            return [list(r) for r in broken if not isinstance(r[0], int) or r[0] >= since]

    rep = ingest_candles(store, BrokenSource(), "BTC/USDT", "1m", T0)
    assert rep.ok
    stored = load_candles(store, "broken", "BTC/USDT", "1m")
    assert [int(t.value // 1_000_000) for t in stored.index] == [T0 + 5 * MIN, T0 + 9 * MIN]
    rows = list_quarantine(store, "broken:BTC/USDT:1m", limit=100)
    reasons = sorted(r["reason"] for r in rows)
    assert len(rows) == 11 and rep.quarantined == 11 and rep.duplicates == 1
    for needle in ("timestamp is not a number", "open is NaN", "non-positive open", "high < low",
                   "negative volume", "duplicate timestamp", "out of order", "not aligned", "close is infinite",
                   "expected 6 fields", "open 120 outside"):
        assert any(needle in r for r in reasons), (needle, reasons)
    assert all(json.loads(r["payload"]) is not None for r in rows)
    alerts = [a for a in list_alerts(store) if a.rule == "ingest.quarantine"]
    assert len(alerts) == 1 and alerts[0].values["new"] == 11
    again = ingest_candles(store, BrokenSource(), "BTC/USDT", "1m", T0, full=True)
    assert again.quarantined == 0 and again.requarantined >= 1 and again.inserted == 0
    assert len(list_quarantine(store, "broken:BTC/USDT:1m", limit=100)) == 11
    assert len([a for a in list_alerts(store) if a.rule == "ingest.quarantine"]) == 1
    report("bad-input batch", {"distinct_reasons": len(set(reasons)),
                               "quarantined": rep.quarantined,
                               "good_rows_stored": len(stored)})


def test_source_failure_becomes_an_alert_not_a_crash(store, fake_market):
    class Down(type(fake_market)):
        def fetch_ohlcv(self, *a, **k):
            raise ConnectionError("venue down")

    rep = ingest_candles(store, Down(now_ms=fake_market.now), "BTC/USDT", "1m", T0)
    assert not rep.ok and "venue down" in rep.errors[0]
    assert [a.rule for a in list_alerts(store)] == ["ingest.source_error"]


def test_trades_incremental_and_bad_trades_quarantined(store, fake_market):
    rep = ingest_trades(store, fake_market, "BTC/USDT", fake_market.now - 10 * MIN)
    assert rep.new_after_end == 20 and rep.ok
    again = ingest_trades(store, fake_market, "BTC/USDT", fake_market.now - 10 * MIN)
    assert again.new_after_end == 0 and _count(store, "trades") == 20

    class BadTrades:
        id = "bad"

        def milliseconds(self):
            return T0 + MIN

        def fetch_trades(self, symbol, since=None, limit=None):
            return [{"id": "1", "timestamp": T0, "side": "buy", "price": 10.0, "amount": 1.0},
                    {"id": "2", "timestamp": T0, "side": "hold", "price": 10.0, "amount": 1.0},
                    {"id": "3", "timestamp": T0, "side": "sell", "price": -1.0, "amount": 1.0},
                    {"id": "4", "timestamp": T0, "side": "sell", "price": 10.0, "amount": 0.0},
                    {"id": "1", "timestamp": T0, "side": "sell", "price": 10.0, "amount": 1.0}]

    bad = ingest_trades(store, BadTrades(), "X/USDT", T0)
    assert bad.new_after_end == 1 and bad.quarantined == 4
    assert {r["reason"].split(" ")[0] for r in list_quarantine(store, "bad:X/USDT:trades")} == {
        "side", "non-positive", "duplicate"}


def test_order_book_snapshot_metrics_and_bad_books(store, fake_market):
    rep = ingest_order_book(store, fake_market, "BTC/USDT", depth_bps=50)
    assert rep.new_after_end == 1
    with store.connect() as conn:
        mid, spread, dbid, dask = conn.exec_driver_sql(
            "SELECT mid, spread_bps, depth_bid, depth_ask FROM book_snapshots").one()
    assert mid == 100.0 and abs(spread - 20.0) < 1e-9
    assert abs(dbid - (99.9 + 99.8 * 2)) < 1e-9 and abs(dask - (100.1 * 1.5 + 100.2 * 2)) < 1e-9
    assert ingest_order_book(store, fake_market, "BTC/USDT", depth_bps=50).unchanged == 1

    class Crossed(type(fake_market)):
        def fetch_order_book(self, symbol, limit=None):
            return {"symbol": symbol, "bids": [[101.0, 1.0]], "asks": [[100.0, 1.0]], "timestamp": self.now}

    class Unsorted(type(fake_market)):
        def fetch_order_book(self, symbol, limit=None):
            return {"symbol": symbol, "bids": [[99.0, 1.0], [99.5, 1.0]], "asks": [[100.0, 1.0]],
                    "timestamp": self.now}

    assert ingest_order_book(store, Crossed(now_ms=1), "BTC/USDT").quarantined == 1
    assert ingest_order_book(store, Unsorted(now_ms=2), "BTC/USDT").quarantined == 1
    reasons = [r["reason"] for r in list_quarantine(store, "fake:BTC/USDT:book")]
    assert any("crossed book" in r for r in reasons) and any("not strictly sorted" in r for r in reasons)


def test_funding_incremental_and_absurd_rate_quarantined(store, fake_market):
    since = fake_market.now - 3 * 86_400_000
    rep = ingest_funding(store, fake_market, "BTC/USDT:USDT", since)
    assert rep.new_after_end == 9
    assert ingest_funding(store, fake_market, "BTC/USDT:USDT", since).new_after_end == 0

    class Absurd(type(fake_market)):
        def fetch_funding_rate_history(self, symbol, since=None, limit=None):
            return [{"timestamp": T0, "fundingRate": 0.0001}, {"timestamp": T0 + 8 * 3_600_000, "fundingRate": 0.5},
                    {"timestamp": T0 + 16 * 3_600_000, "fundingRate": float("nan")}]

    bad = ingest_funding(store, Absurd(now_ms=T0 + 86_400_000, exchange_id="absurd"), "BTC/USDT:USDT", T0)
    assert bad.new_after_end == 1 and bad.quarantined == 2
    assert any("absurd funding rate" in r["reason"] for r in list_quarantine(store, "absurd:BTC/USDT:USDT:funding"))


def test_feed_ingest_is_incremental_and_rejects_lookahead(store):
    class Feed:
        feed = "sentiment"
        id = "test"

        def __init__(self):
            self.points = [FeedPoint("fear_greed", T0 + i * 86_400_000, T0 + i * 86_400_000 + 3_600_000, 40.0 + i)
                           for i in range(5)]

        def fetch_feed(self, since=None, until=None):
            return [p for p in self.points if since is None or p.ts >= since]

    feed = Feed()
    assert ingest_feed(store, feed).new_after_end == 5
    assert ingest_feed(store, feed).new_after_end == 0
    feed.points.append(FeedPoint("fear_greed", T0 + 9 * 86_400_000, T0, 50.0))  # published before observed
    feed.points.append(FeedPoint("fear_greed", T0 + 10 * 86_400_000, T0 + 10 * 86_400_000, float("nan")))
    rep = ingest_feed(store, feed)
    assert rep.quarantined == 2 and rep.new_after_end == 0


def test_feed_with_a_slower_series_is_not_skipped_past(store):
    class TwoSeries:
        feed = "onchain"
        id = "test"
        now = T0 + 86_400_000

        def fetch_feed(self, since=None, until=None):
            hourly = [FeedPoint("fast", T0 + h * 3_600_000, T0 + h * 3_600_000, float(h)) for h in range(48)]
            daily = [FeedPoint("slow", T0 + d * 86_400_000, T0 + (d + 1) * 86_400_000, 10.0 + d) for d in range(2)]
            return [p for p in hourly + daily
                    if p.published_ts <= self.now and (since is None or p.ts >= since)]

    feed = TwoSeries()
    first = ingest_feed(store, feed)
    assert first.new_after_end == 25 + 1  # 25 hourly points and the first daily one are published by now
    feed.now = T0 + 2 * 86_400_000  # the daily value of day 1 is published now, older than the newest hourly
    second = ingest_feed(store, feed)
    assert second.gaps_filled == 1 and second.new_after_end == 23 and second.unchanged == 24
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM feed_values WHERE series = 'slow'").scalar() == 2
