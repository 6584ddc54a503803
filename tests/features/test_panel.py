"""load_panel against a real temp state.db: candles, funding from the perp, feeds aligned by publication time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.features.alt_data import align_feed_points
from engine.data.symbols import perp_symbol
from engine.features.panel import feed_columns_for, load_book_snapshots, load_panel, load_trades, resample_panel
from engine.store.candles import upsert_candles

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


def _candles(store, symbol: str, n: int, step: int = H, timeframe: str = "1h", price: float = 100.0) -> None:
    rows = [[T0 + i * step, price + i, price + i + 1, price + i - 1, price + i + 0.5, 10.0 + i] for i in range(n)]
    upsert_candles(store, "sim", symbol, timeframe, rows)


def _feed(store, rows: list[tuple[str, str, int, int, float]]) -> None:
    store.executemany("INSERT INTO feed_values (feed, series, ts, published_ts, value) VALUES (?, ?, ?, ?, ?)", rows)


def test_perp_symbol() -> None:
    assert perp_symbol("BTC/USDT") == "BTC/USDT:USDT"
    assert perp_symbol("ETH/USDT:USDT") == "ETH/USDT:USDT"
    with pytest.raises(ValueError, match="symbol"):
        perp_symbol("BTCUSDT")


def test_candles_and_funding_known_before_close(store) -> None:
    _candles(store, "BTC/USDT", 24)
    store.executemany("INSERT INTO funding_rates (exchange, symbol, ts, rate, mark_price, index_price) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      [("sim", "BTC/USDT:USDT", T0, 1e-4, 101.0, 100.0),
                       ("sim", "BTC/USDT:USDT", T0 + 8 * H, 3e-4, 99.0, 100.0),
                       ("sim", "BTC/USDT:USDT", T0 + 16 * H + 1, -2e-4, 100.0, 100.0)])
    panel = load_panel(store, "sim", ["BTC/USDT"], "1h", feeds=False)
    frame = panel["BTC/USDT"]
    assert list(frame.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert frame.index.name == "ts" and str(frame.index.tz) == "UTC" and len(frame) == 24
    fr = frame["funding_rate"]
    assert fr.iloc[0] == 1e-4 and fr.iloc[7] == 1e-4 and fr.iloc[8] == 3e-4  # the 08:00 print is known inside bar 08:00
    assert fr.iloc[16] == -2e-4  # printed 1 ms after 16:00, still before bar 16:00 closes
    assert frame["basis"].iloc[0] == pytest.approx(0.01) and frame["basis"].iloc[8] == pytest.approx(-0.01)
    sub = load_panel(store, "sim", ["BTC/USDT"], "1h", since_ms=T0 + 10 * H, until_ms=T0 + 12 * H, feeds=False)
    assert len(sub["BTC/USDT"]) == 2 and sub["BTC/USDT"]["funding_rate"].tolist() == [3e-4, 3e-4]


def test_basis_from_perp_candles_when_no_mark_price(store) -> None:
    _candles(store, "ETH/USDT", 5, price=100.0)
    _candles(store, "ETH/USDT:USDT", 5, price=101.0)
    frame = load_panel(store, "sim", ["ETH/USDT"], "1h", feeds=False)["ETH/USDT"]
    assert frame["basis"].iloc[0] == pytest.approx(101.5 / 100.5 - 1)


def test_feeds_align_by_publication_time_not_observation_time(store) -> None:
    _candles(store, "BTC/USDT", 48)
    _candles(store, "ETH/USDT", 48)
    _feed(store, [
        ("macro", "risk_index", T0, T0 + 10 * H, 1.0),  # observed 00:00, published 10:00
        ("macro", "risk_index", T0 + 6 * H, T0 + 30 * H, 2.0),  # published the next day
        ("macro", "risk_index", T0 + 2 * H, T0 + 40 * H, 9.0),  # a late *older* observation: must not override
        ("onchain", "BTC_exchange_netflow", T0, T0 + 5 * H, -50.0),
        ("onchain", "ETH_exchange_netflow", T0, T0 + 5 * H, 70.0),
    ])
    panel = load_panel(store, "sim", ["BTC/USDT", "ETH/USDT"], "1h")
    btc = panel["BTC/USDT"]
    risk = btc["risk_index"]
    assert risk.iloc[:10].isna().all()  # bar 09:00 closes at 10:00, publication at 10:00 is not *before* it
    assert risk.iloc[10] == 1.0 and risk.iloc[29] == 1.0  # the 06:00 observation is unknown until 30:00
    assert risk.iloc[30] == 2.0 and risk.iloc[47] == 2.0  # newest observation wins over the late older one
    assert btc["exchange_netflow"].iloc[5] == -50.0 and panel["ETH/USDT"]["exchange_netflow"].iloc[5] == 70.0
    assert "ETH_exchange_netflow" not in btc.columns


def test_align_feed_points_and_bad_publication() -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    s = align_feed_points(idx, "1h", [T0], [T0 + H + 1], [5.0])
    assert np.isnan(s.iloc[0]) and s.iloc[1] == 5.0
    with pytest.raises(ValueError, match="published_ts"):
        align_feed_points(idx, "1h", [T0 + H], [T0], [1.0])


def test_feed_columns_mapping() -> None:
    cols = feed_columns_for("BTC/USDT", ["risk_index", "BTC_netflow", "ETH_netflow", "SPX_close"],
                            ["BTC/USDT", "ETH/USDT"])
    assert cols == {"BTC_netflow": "netflow", "SPX_close": "SPX_close", "risk_index": "risk_index"}


def test_resample_1m_to_1h_labels_bar_open_and_drops_partial(store) -> None:
    _candles(store, "SOL/USDT", 150, step=60_000, timeframe="1m")  # 2.5 hours of 1m bars
    m1 = load_panel(store, "sim", ["SOL/USDT"], "1m", feeds=False)
    h1 = resample_panel(m1, "1h")["SOL/USDT"]
    assert len(h1) == 2  # the half-filled third hour is dropped
    first = m1["SOL/USDT"].iloc[:60]
    assert h1.index[0] == pd.Timestamp("2024-01-01T00:00Z") and h1.index.name == "ts"
    assert h1.iloc[0]["open"] == first["open"].iloc[0] and h1.iloc[0]["close"] == first["close"].iloc[-1]
    assert h1.iloc[0]["high"] == first["high"].max() and h1.iloc[0]["low"] == first["low"].min()
    assert h1.iloc[0]["volume"] == pytest.approx(first["volume"].sum())
    assert len(resample_panel(m1, "1h", drop_partial=False)["SOL/USDT"]) == 3
    with pytest.raises(ValueError, match="timeframe"):
        resample_panel({"x": h1}, "1m")


def test_trades_and_book_loaders(store) -> None:
    store.executemany("INSERT INTO trades (exchange, symbol, trade_id, ts, price, amount, side) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?)", [("sim", "BTC/USDT", "1", T0, 100.0, 1.0, "buy"),
                                                ("sim", "BTC/USDT", "2", T0 + 5, 100.0, 2.0, "sell")])
    store.executemany("INSERT INTO book_snapshots (exchange, symbol, ts, bids, asks, mid, spread_bps, depth_bid, "
                      "depth_ask) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [("sim", "BTC/USDT", T0, "[]", "[]", 100.0, 2.0, 1e5, 1e5)])
    trades = load_trades(store, "sim", "BTC/USDT")
    assert trades["side"].tolist() == [1, -1] and trades["amount"].sum() == 3.0
    book = load_book_snapshots(store, "sim", "BTC/USDT")
    assert book["spread_bps"].tolist() == [2.0]


def test_empty_symbols_rejected(store) -> None:
    with pytest.raises(ValueError, match="symbols"):
        load_panel(store, "sim", [], "1h")
    with pytest.raises(ValueError, match="timeframe"):
        load_panel(store, "sim", ["BTC/USDT"], "1x")


def test_microstructure_columns_from_trades_and_books(store) -> None:
    _candles(store, "BTC/USDT", 80)
    rng = np.random.default_rng(4)
    n = 80 * 30
    ts = np.sort(rng.integers(T0, T0 + 80 * H, n))
    store.executemany("INSERT INTO trades (exchange, symbol, trade_id, ts, price, amount, side) VALUES "
                      "(?, ?, ?, ?, ?, ?, ?)",
                      [("sim", "BTC/USDT", str(i), int(t), 100.0, float(rng.uniform(0.1, 2)),
                        "buy" if rng.random() < 0.6 else "sell") for i, t in enumerate(ts)])
    store.executemany("INSERT INTO book_snapshots (exchange, symbol, ts, bids, asks, mid, spread_bps, depth_bid, "
                      "depth_ask) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [("sim", "BTC/USDT", T0 + i * H + 1000, "[]", "[]", 100.0, 2.0 + i % 3, 1e5, 1e5)
                       for i in range(80)])
    full = load_panel(store, "sim", ["BTC/USDT"], "1h", feeds=False, microstructure=True)["BTC/USDT"]
    assert {"ofi", "ofi_12", "vpin", "spread_bps", "depth", "depth_ratio"} <= set(full.columns)
    assert full["ofi"].notna().all() and full["ofi"].mean() > 0.05  # 60 % taker buys
    assert full["vpin"].iloc[-1] > 0 and full["spread_bps"].iloc[:3].tolist() == [2.0, 3.0, 4.0]
    part = load_panel(store, "sim", ["BTC/USDT"], "1h", until_ms=T0 + 60 * H, feeds=False,
                      microstructure=True)["BTC/USDT"]
    pd.testing.assert_frame_equal(full.iloc[:60], part)  # point-in-time, including the VPIN bucket size
    from engine.features.builder import build_features

    assert "vpin" in build_features(full).columns and "vpin_z" not in build_features(full).columns


def test_a_windowed_panel_equals_the_full_history_panel_on_its_window(store) -> None:  # noqa: ANN001
    """A tick's panel (since_ms set) reads funding and feeds from its window on, plus what was known just before it,
    not the whole history (which grows for as long as an engine runs); every bar gets the same values as from the
    full-history panel. Simulator bars, funding settlements and all three feeds over 20 days."""
    from engine.data.ingest import ingest_candles, ingest_feed, ingest_funding
    from engine.data.simulator import SimulatedExchange

    day = 86_400_000
    sim = SimulatedExchange(seed=3, clock=lambda: 1_790_000_000.0)
    now = sim.milliseconds() // H * H
    symbols = ["BTC/USDT", "ETH/USDT"]
    for sym in symbols:
        ingest_candles(store, sim, sym, "1h", now - 20 * day, now)
        ingest_funding(store, sim, perp_symbol(sym), now - 20 * day, now)
    for feed in ("macro", "sentiment", "onchain"):
        ingest_feed(store, sim.feed_source(feed), now - 20 * day, now)
    full = load_panel(store, "sim", symbols, "1h")
    for since in (now - 15 * day, now - 10 * day + 7 * H, now - 3 * day):
        until = now - 2 * H
        part = load_panel(store, "sim", symbols, "1h", since_ms=since, until_ms=until)
        for sym in symbols:
            want = full[sym].loc[pd.Timestamp(since, unit="ms", tz="UTC"):pd.Timestamp(until - 1, unit="ms", tz="UTC")]
            assert len(part[sym]) > 20 and part[sym].notna().sum().min() > 0
            pd.testing.assert_frame_equal(part[sym], want, check_freq=False)
    from engine.features.panel import load_feed_rows

    recent = load_feed_rows(store, now, since_ms=now - 2 * day)
    everything = load_feed_rows(store, now)
    assert 0 < len(recent) < len(everything) / 5  # a tick reads its window, not the growing history
