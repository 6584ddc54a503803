"""The engine's regular candle pull resumes after the newest stored bar, so pulls further apart than a few bars
(a stalled engine, the simulator at a speed-up) leave no holes in the stored series.

Holes in different places per symbol were the cause of the weekly re-optimisation failing with "equity contains NaN
or infinite values" in long engine runs (see tests/backtest/test_missing_bars.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("engine.data.simulator")

from engine.config import Settings, settings_with  # noqa: E402
from engine.data.factory import make_source  # noqa: E402
from engine.data.pulls import INCREMENTAL_BARS, pull_candles  # noqa: E402
from engine.store import market_repo as repo  # noqa: E402
from engine.store.candles import load_candles  # noqa: E402

MIN = 60_000
NOW = 1_763_769_600_000 + 17 * MIN + 25_000  # 25 s into a bar


def test_a_pull_after_a_pause_longer_than_the_incremental_window_leaves_no_gap(store):
    clock = {"now": NOW}
    settings = Settings()
    sim = make_source("sim", settings, clock=lambda: clock["now"])
    pull_candles(store, sim, "BTC/USDT", "1m", settings, warmup_bars=60)
    for pause in (3, 4 * INCREMENTAL_BARS, 37):  # the engine run's holes were up to 37 minutes long
        clock["now"] += pause * MIN
        pull_candles(store, sim, "BTC/USDT", "1m", settings)
    bars = load_candles(store, "sim", "BTC/USDT", "1m")
    first, last = int(bars.index[0].value // 1_000_000), int(bars.index[-1].value // 1_000_000)
    assert repo.candle_gaps(store, "sim", "BTC/USDT", MIN, "1m", since=first, until=last + MIN) == []
    assert last == clock["now"] - clock["now"] % MIN - MIN  # up to the last closed bar
    assert len(bars) == 59 + 3 + 4 * INCREMENTAL_BARS + 37  # the warm-up's 60 bars back from 25 s into a bar: 59


def test_a_pull_after_a_pause_longer_than_the_backfill_window_reaches_back_only_that_window(store):
    clock = {"now": NOW}
    settings = settings_with(Settings(), data={"backfill_days": 1})
    sim = make_source("sim", settings, clock=lambda: clock["now"])
    pull_candles(store, sim, "BTC/USDT", "1m", settings, warmup_bars=10)
    clock["now"] += 3 * 86_400_000  # three days down: one day (the backfill window) is pulled, not three
    rep = pull_candles(store, sim, "BTC/USDT", "1m", settings)
    assert rep["inserted"] == 1439  # closed bars starting in the last 24 h, 25 s into a bar: 1439
