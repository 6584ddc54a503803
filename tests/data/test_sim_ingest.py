"""The real SimulatedExchange through make_source with an injected clock: exact idempotency of repeated pulls."""

from __future__ import annotations

import pytest

pytest.importorskip("engine.data.simulator")

from engine.config import Settings  # noqa: E402
from engine.data.factory import make_source  # noqa: E402
from engine.data.ingest import ingest_candles, ingest_funding, ingest_trades  # noqa: E402
from engine.store.candles import load_candles  # noqa: E402

MIN = 60_000
NOW = 1_763_769_600_000 + 17 * MIN + 25_000  # a fixed wall-clock instant, 25 s into a bar


def test_same_clock_adds_zero_rows_and_one_minute_later_exactly_one_bar_per_symbol(store, report):
    clock = {"now": NOW}
    sim = make_source("sim", Settings(), clock=lambda: clock["now"])
    since = NOW - 25_000 - 6 * 3_600_000  # aligned to a bar: 360 closed bars up to now
    first = {s: ingest_candles(store, sim, s, "1m", since) for s in ("BTC/USDT", "ETH/USDT")}
    assert all(r.ok and r.new_after_end == 360 for r in first.values()), [r.summary() for r in first.values()]
    again = {s: ingest_candles(store, sim, s, "1m", since) for s in ("BTC/USDT", "ETH/USDT")}
    assert all((r.inserted, r.changed, r.quarantined, r.requests) == (0, 0, 0, 0) for r in again.values())
    verify = ingest_candles(store, sim, "BTC/USDT", "1m", since, full=True)
    assert (verify.inserted, verify.changed, verify.unchanged) == (0, 0, 360)  # same bars, value for value

    clock["now"] += MIN
    later = {s: ingest_candles(store, sim, s, "1m", since) for s in ("BTC/USDT", "ETH/USDT")}
    for rep in later.values():
        assert (rep.backfilled_before_start, rep.gaps_filled, rep.new_after_end, rep.changed) == (0, 0, 1, 0)
        assert "0 in or before the already-stored range (0 gap rows filled), 1 new after the previous end, " \
               "0 changed" in rep.summary()
    bars = load_candles(store, "sim", "BTC/USDT", "1m")
    assert len(bars) == 361 and bars.index.is_monotonic_increasing
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()

    # a second simulator instance (a restarted engine) continues the same history: nothing changes
    sim2 = make_source("sim", Settings(), clock=lambda: clock["now"])
    assert ingest_candles(store, sim2, "BTC/USDT", "1m", since, full=True).changed == 0
    report("sim idempotency (injected clock)", {
        "first_run_rows": sum(r.inserted for r in first.values()),
        "second_run_rows": sum(r.inserted for r in again.values()),
        "one_minute_later_rows": sum(r.inserted for r in later.values())})


def test_sim_trades_and_funding_are_incremental(store):
    sim = make_source("sim", Settings(), clock=lambda: NOW)
    t1 = ingest_trades(store, sim, "BTC/USDT", NOW - 10 * MIN)
    t2 = ingest_trades(store, sim, "BTC/USDT", NOW - 10 * MIN)
    assert t1.new_after_end > 0 and t2.new_after_end == 0 and t2.changed == 0 and t1.quarantined == 0
    f1 = ingest_funding(store, sim, "BTC/USDT:USDT", NOW - 3 * 86_400_000)
    f2 = ingest_funding(store, sim, "BTC/USDT:USDT", NOW - 3 * 86_400_000)
    assert f1.new_after_end in (9, 10) and f2.new_after_end == 0
