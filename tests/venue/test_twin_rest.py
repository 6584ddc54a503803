"""The real sync ccxt.binance against the twin: market data, CcxtSource + ingest, signed orders, Binance's errors."""

from __future__ import annotations

import ccxt
import pytest

from engine.data.ccxt_source import CcxtSource, SourceError
from engine.data.ingest import ingest_candles, ingest_funding, ingest_order_book, ingest_trades
from engine.store.candles import load_candles
from tests.support.twin import twin_exchange

MIN = 60_000


def test_public_market_data_matches_the_simulator(twin):
    ex = twin.exchange()
    ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"} <= set(ex.markets)
    m = ex.market("BTC/USDT:USDT")
    assert m["swap"] and m["linear"] and m["precision"]["price"] == 0.1 and m["limits"]["cost"]["min"] == 100
    sim = twin.twin.sim
    now = sim.milliseconds()
    since = now - now % MIN - 30 * MIN
    bars = ex.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=20)
    assert bars == sim.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=20)
    trades = ex.fetch_trades("ETH/USDT", since=since, limit=50)
    expected = sim.fetch_trades("ETH/USDT", since=since, limit=50)
    assert [(t["id"], t["price"], t["amount"], t["side"]) for t in trades] == \
        [(t["id"], t["price"], t["amount"], t["side"]) for t in expected]
    book = ex.fetch_order_book("BTC/USDT", 10)
    assert len(book["bids"]) == 10 and book["bids"][0][0] < book["asks"][0][0] and book["nonce"] > 0
    rate = ex.fetch_funding_rate("BTC/USDT:USDT")
    assert rate["markPrice"] > 0 and rate["fundingTimestamp"] > now - 1000
    hist = ex.fetch_funding_rate_history("BTC/USDT:USDT", since=now - 3 * 86_400_000, limit=5)
    assert [h["fundingRate"] for h in hist] == \
        [h["fundingRate"] for h in sim.fetch_funding_rate_history("BTC/USDT:USDT", now - 3 * 86_400_000, 5)]
    ticker = ex.fetch_ticker("SOL/USDT")
    assert ticker["bid"] < ticker["ask"] and ticker["last"] > 0


def test_ccxt_source_and_ingest_store_the_twins_data(twin, store):
    src = CcxtSource(twin.exchange(rateLimit=1))  # pacing is tested elsewhere; the twin is local
    now = src.milliseconds()
    since = now - now % MIN - 150 * MIN
    rep = ingest_candles(store, src, "BTC/USDT", "1m", since, page_limit=60)
    assert rep.ok and rep.gaps_remaining == 0 and rep.requests >= 3  # paged through the twin's klines
    df = load_candles(store, "binance", "BTC/USDT", "1m")
    sim_rows = twin.twin.sim.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=len(df))
    assert [[int(ts.value // 1_000_000), *row] for ts, row in zip(df.index, df.to_numpy().tolist())] == sim_rows
    trades = ingest_trades(store, src, "BTC/USDT", now - 20 * MIN, now)
    assert trades.ok and trades.new_after_end == len(twin.twin.sim.fetch_trades("BTC/USDT", now - 20 * MIN, 5000)
                                                     ) - trades.outside_range
    assert ingest_order_book(store, src, "BTC/USDT").ok
    funding = ingest_funding(store, src, "BTC/USDT:USDT", now - 5 * 86_400_000, now)
    assert funding.ok and funding.new_after_end >= 14


def test_signed_orders_with_client_ids_cancel_and_fills(twin):
    ex = twin.exchange()
    order = ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "qd-spot-1"})
    assert order["status"] == "closed" and order["filled"] == 0.01 and order["clientOrderId"] == "qd-spot-1"
    assert order["fee"]["currency"] == "BTC" and order["fee"]["cost"] == pytest.approx(0.01 * 0.001)
    bal = ex.fetch_balance()
    assert bal["BTC"]["total"] == pytest.approx(0.01 * 0.999)
    assert bal["USDT"]["total"] == pytest.approx(100_000 - order["cost"])
    bid = ex.fetch_order_book("BTC/USDT")["bids"][0][0]
    resting = ex.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2),
                              params={"newClientOrderId": "qd-spot-2"})
    assert resting["status"] == "open"
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.01 * round(bid * 0.9, 2))
    assert [o["clientOrderId"] for o in ex.fetch_open_orders("BTC/USDT")] == ["qd-spot-2"]
    by_client = ex.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "qd-spot-2"})
    assert by_client["id"] == resting["id"]
    canceled = ex.cancel_order(resting["id"], "BTC/USDT")
    assert canceled["status"] == "canceled" and ex.fetch_balance()["USDT"]["used"] == 0
    ex.create_order("BTC/USDT", "limit", "sell", 0.001, round(bid * 1.5, 2))
    ex.create_order("BTC/USDT", "limit", "sell", 0.001, round(bid * 1.6, 2))
    assert len(ex.cancel_all_orders("BTC/USDT")) == 2 and ex.fetch_open_orders("BTC/USDT") == []
    mine = ex.fetch_my_trades("BTC/USDT")
    assert [t["order"] for t in mine] == [order["id"]] * len(mine) and sum(t["amount"] for t in mine) == \
        pytest.approx(0.01)


def test_futures_orders_positions_leverage_and_reduce_only(twin):
    ex = twin.exchange()
    ex.set_leverage(5, "ETH/USDT:USDT")
    buy = ex.create_order("ETH/USDT:USDT", "market", "buy", 0.5, params={"newClientOrderId": "qd-perp-1"})
    assert buy["status"] == "closed" and buy["clientOrderId"] == "qd-perp-1"
    pos = ex.fetch_positions(["ETH/USDT:USDT"])[0]
    assert pos["contracts"] == 0.5 and pos["side"] == "long" and pos["leverage"] == 5
    assert pos["entryPrice"] == pytest.approx(buy["average"])
    with pytest.raises(ccxt.BaseError, match="-2022"):  # reduce-only in the increasing direction
        ex.create_order("ETH/USDT:USDT", "market", "buy", 0.1, params={"reduceOnly": True})
    close = ex.create_order("ETH/USDT:USDT", "market", "sell", 0.8, params={"reduceOnly": True})
    assert close["filled"] == 0.5  # clipped to the position
    assert ex.fetch_positions(["ETH/USDT:USDT"]) == []  # ccxt drops flat positions
    fb = ex.fetch_balance({"type": "future"})
    fills = ex.fetch_my_trades("ETH/USDT:USDT")
    realized = sum(float(t["info"]["realizedPnl"]) for t in fills)
    fees = sum(t["fee"]["cost"] for t in fills)
    assert fb["USDT"]["total"] == pytest.approx(100_000 + realized - fees)


@pytest.mark.parametrize("case, exc, code", [
    ("bad_signature", ccxt.AuthenticationError, "-1022"),
    ("unknown_key", ccxt.AuthenticationError, "-2015"),
    ("malformed_key", ccxt.AuthenticationError, "-2014"),
    ("stale_timestamp", ccxt.InvalidNonce, "-1021"),
    ("ahead_timestamp", ccxt.InvalidNonce, "-1021"),
    ("insufficient_balance", ccxt.InsufficientFunds, "-2010"),
    ("min_notional", ccxt.BadRequest, "-1013"),
    # a USD-M-only code: ccxt picks the per-market table by URL, which point_at teaches the twin's URLs
    ("futures_min_notional", ccxt.InvalidOrder, "-4164"),
    ("unknown_order", ccxt.OrderNotFound, "-2013"),
    ("cancel_unknown", ccxt.OrderNotFound, "-2011"),
])
def test_binance_error_codes_map_to_ccxt_exceptions(twin, case, exc, code):
    key, secret = twin.api_key, twin.api_secret
    options = {}
    if case == "bad_signature":
        secret = "x" * 64
    elif case == "unknown_key":
        key = "A" * 64
    elif case == "malformed_key":
        key = "not-a-key!"
    elif case == "stale_timestamp":
        options = {"timeDifference": 70_000, "recvWindow": 5000}
    elif case == "ahead_timestamp":
        options = {"timeDifference": -5_000}
    ex = twin_exchange(twin.base_url, key, secret, options=options)
    ex.load_markets()
    with pytest.raises(exc) as info:
        if case == "insufficient_balance":
            ex.create_order("BTC/USDT", "market", "buy", 50)
        elif case == "min_notional":
            ex.create_order("BTC/USDT", "market", "buy", 0.00005)
        elif case == "futures_min_notional":
            ex.create_order("BTC/USDT:USDT", "market", "buy", 0.001)
        elif case == "unknown_order":
            ex.fetch_order("123", "BTC/USDT")
        elif case == "cancel_unknown":
            ex.cancel_order("123", "BTC/USDT")
        else:
            ex.fetch_balance()
    assert code in str(info.value) + str(ex.last_http_response)  # message-matched errors omit the body


def test_429_with_retry_after_and_5xx_map_to_ccxt_and_ccxt_source_retries(twin):
    ex = twin.exchange()
    ex.load_markets()
    twin.set_faults(rate_limit=1, retry_after_s=3)
    with pytest.raises(ccxt.DDoSProtection) as info:
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert "429" in str(info.value) and ex.last_response_headers["Retry-After"] == "3"
    assert int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]) > 0
    twin.set_faults(http_5xx=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    assert len(ex.fetch_ohlcv("BTC/USDT", "1m", limit=2)) == 2  # counted faults are spent
    sleeps: list[float] = []
    src = CcxtSource(ex, sleep=sleeps.append, max_retries=3)
    twin.set_faults(rate_limit=1, http_5xx=1)
    assert len(src.fetch_ohlcv("BTC/USDT", "1m", limit=3)) == 3
    assert src.retries == 2 and len(sleeps) >= 2
    twin.set_faults(http_5xx=5, path_prefix="/api/v3/klines")
    src2 = CcxtSource(ex, sleep=sleeps.append, max_retries=1)
    with pytest.raises(SourceError, match="gave up after 2 attempts"):
        src2.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert ex.fetch_ticker("BTC/USDT")["last"] > 0  # other paths are not hit


def test_rejected_orders_and_partial_fills_faults(twin):
    ex = twin.exchange()
    twin.set_faults(reject_orders=True)
    with pytest.raises(ccxt.InvalidOrder, match="-2010"):
        ex.create_order("BTC/USDT", "market", "buy", 0.01)
    twin.set_faults(reject_orders=False, partial_fill=0.5)
    order = ex.create_order("BTC/USDT", "market", "buy", 0.01)
    assert order["filled"] == pytest.approx(0.005) and order["status"] == "expired"


def test_a_restarted_twin_keeps_its_market_time_at_speed(tmp_path):
    import time

    from engine.venue.server import Twin
    from engine.venue.signing import generate_key_pair

    first = Twin(tmp_path / "v.db", [generate_key_pair()], speed=100)
    before = first.sim.milliseconds()
    first.books.close()
    time.sleep(0.5)
    again = Twin(tmp_path / "v.db", [generate_key_pair()], speed=100)
    jumped = again.sim.milliseconds() - before
    again.books.close()
    assert 40_000 <= jumped <= 5 * 60_000  # ~50 simulated seconds later, not back at wall time
    other = Twin(tmp_path / "v.db", [generate_key_pair()], speed=1)  # a new speed starts market time from now
    assert abs(other.sim.milliseconds() - time.time() * 1000) < 5_000
    other.books.close()
