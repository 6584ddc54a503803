"""CcxtSource on a real ccxt.binance instance whose `fetch` replays recorded Binance responses (no network)."""

from __future__ import annotations

import ccxt
import pytest

from engine.data.ccxt_source import CcxtSource, SourceError, build_ccxt_exchange
from engine.data.ingest import ingest_candles, ingest_funding, ingest_order_book, ingest_trades
from engine.store import list_alerts
from engine.store.candles import load_candles
from tests.support.ccxt_replay import UnrecordedRequest, install_replay

MIN = 60_000
T0 = 1_704_067_200_000
NOW = T0 + 120 * MIN + 30_000  # 30 s into the 121st bar (the recordings' server time)


class FakeTime:
    """Injected monotonic clock + sleep: sleeping advances the clock, nothing really waits."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _source(extra=(), page_limit=50, **kw):
    exchange = build_ccxt_exchange("binance")
    replay = install_replay(exchange, extra=extra)
    clock = FakeTime()
    alerts = []
    src = CcxtSource(exchange, page_limit=page_limit, sleep=clock.sleep, monotonic=clock.monotonic,
                     clock=lambda: NOW, alert=lambda *a: alerts.append(a), **kw)
    return src, replay, clock, alerts


def test_real_binance_parser_paginates_recorded_klines_with_one_retried_network_error(store, report):
    flaky = {"path": "/api/v3/klines", "params": {"symbol": "BTCUSDT", "startTime": T0 + 50 * MIN}, "times": 1,
             "raise": "NetworkError"}
    src, replay, clock, alerts = _source(extra=[flaky])
    assert isinstance(src.exchange, ccxt.binance)
    rep = ingest_candles(store, src, "BTC/USDT", "1m", T0)
    assert rep.ok and rep.new_after_end == 120 and rep.outside_range == 1
    klines = replay.calls_to("/api/v3/klines")
    assert [int(c.params["startTime"]) for c in klines] == [T0, T0 + 50 * MIN, T0 + 50 * MIN, T0 + 100 * MIN]
    assert all(c.params["limit"] == "50" for c in klines)
    assert src.retries == 1 and alerts == []
    assert 0.5 in clock.sleeps  # the backoff before the retry
    # load_markets ran through the recordings too (spot + USD-M exchangeInfo), once
    assert [c.path for c in replay.calls[:2]] == ["/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"]
    df = load_candles(store, "binance", "BTC/USDT", "1m")
    # the recorded wire values are decimal strings; the real ccxt parser turned them into floats
    assert len(df) == 120 and df["open"].iloc[0] == 42300.0 and df.index[0].value // 1_000_000 == T0
    again = ingest_candles(store, src, "BTC/USDT", "1m", T0)
    assert again.inserted == 0 and again.requests == 0
    report("ccxt replay", {"klines_requests": len(klines), "retries": src.retries,
                           "paced_sleep_s": round(sum(clock.sleeps) - 0.5, 3), "recorded_entries": len(replay.entries)})


def test_requests_are_paced_by_rate_limit_times_endpoint_weight():
    src, replay, clock, _ = _source()
    src.fetch_ohlcv("BTC/USDT", "1m", since=T0, limit=150)
    n = len(replay.calls)
    assert n == 5 and src.requests == 5  # 2 x exchangeInfo + 3 klines pages
    # no clock advance except through sleep: each request waits rateLimit (50 ms) x ccxt's cost of the previous
    # endpoint (spot exchangeInfo 4, USD-M exchangeInfo 1, spot klines with limit 50: 0.4)
    assert src.exchange.rateLimit == 50
    assert clock.sleeps == pytest.approx([0.2, 0.05, 0.02, 0.02])
    assert clock.t - 1000.0 == pytest.approx(sum(clock.sleeps))


def test_retries_are_bounded_and_exhaustion_alerts():
    down = {"path": "/api/v3/klines", "status": 503, "body": "Service Unavailable"}
    src, _replay, clock, alerts = _source(extra=[down], max_retries=2)
    with pytest.raises(SourceError) as err:
        src.fetch_ohlcv("BTC/USDT", "1m", since=T0, limit=10)
    assert err.value.retryable and err.value.alerted and "ExchangeNotAvailable" in str(err.value)
    assert src.retries == 2 and [a[1] for a in alerts] == ["ccxt.retries_exhausted"]
    backoffs = [s for s in clock.sleeps if s >= 0.5]
    assert backoffs == [0.5, 1.0]


def test_rate_limit_exceeded_backs_off_longer_then_succeeds():
    limited = {"path": "/api/v3/klines", "status": 429, "times": 1,
               "body": {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."}}
    src, _replay, clock, _ = _source(extra=[limited])
    rows = src.fetch_ohlcv("BTC/USDT", "1m", since=T0, limit=50)
    assert len(rows) == 50 and src.retries == 1 and 1.0 in clock.sleeps


def test_other_ccxt_errors_become_alerts_and_ingest_reports_them(store):
    bad_symbol = {"path": "/api/v3/klines", "status": 400, "times": 1, "body": {"code": -1121, "msg": "Invalid symbol."}}
    src, _replay, _clock, alerts = _source(extra=[bad_symbol])
    rep = ingest_candles(store, src, "BTC/USDT", "1m", T0)
    assert not rep.ok and "BadSymbol" in rep.errors[0] and src.retries == 0
    assert [a[1] for a in alerts] == ["ccxt.error"]
    assert list_alerts(store) == []  # the source already alerted through its sink; ingest does not double it


def test_unrecorded_request_is_refused_by_name():
    src, _replay, _clock, _ = _source()
    with pytest.raises(UnrecordedRequest, match=r"GET /api/v3/klines .*ETHUSDT"):
        src.fetch_ohlcv("ETH/USDT", "1m", since=T0, limit=10)


def test_trades_book_and_funding_through_the_real_parser(store):
    src, replay, _clock, _ = _source()
    trades = ingest_trades(store, src, "BTC/USDT", T0, until_ms=T0 + 2 * 3_600_000)
    assert trades.ok and trades.new_after_end == 40
    windows = [int(c.params["startTime"]) for c in replay.calls_to("/api/v3/aggTrades")]
    assert windows == [T0, T0 + 3_600_000]  # one-hour aggTrades windows
    with store.connect() as conn:
        sides = dict(conn.exec_driver_sql("SELECT side, COUNT(*) FROM trades GROUP BY side").fetchall())
    assert set(sides) == {"buy", "sell"} and sum(sides.values()) == 40

    spot = ingest_order_book(store, src, "BTC/USDT")
    perp = ingest_order_book(store, src, "BTC/USDT:USDT")
    assert spot.new_after_end == 1 and perp.new_after_end == 1
    assert spot.last_ts == NOW  # spot depth has no timestamp on the wire: the source clock stamps it
    assert perp.last_ts == NOW - 12  # USD-M depth carries its own transaction time

    funding = ingest_funding(store, src, "BTC/USDT:USDT", T0 - 72 * 3_600_000)
    assert funding.new_after_end == 9 and funding.ok
    with store.connect() as conn:
        marks = conn.exec_driver_sql("SELECT COUNT(mark_price) FROM funding_rates").scalar()
    assert marks == 9  # markPrice from Binance's fundingRate rows (ccxt keeps it in `info`)
    current = src.fetch_funding_rate("BTC/USDT:USDT")
    assert current["fundingRate"] == pytest.approx(0.00010312) and current["markPrice"] == pytest.approx(42452.71)


def test_build_rejects_unknown_exchange_id():
    with pytest.raises(ValueError, match="unknown ccxt exchange id 'nosuchex'"):
        build_ccxt_exchange("nosuchex")


def test_replay_routes_post_bodies_and_signed_requests_by_business_params():
    """The helper also serves private (signed) order calls for the runtime tests: routed on method, path, params."""
    exchange = build_ccxt_exchange("binance")
    exchange.apiKey, exchange.secret = "key", "secret"
    exchange.options["fetchCurrencies"] = False  # with keys, load_markets would also call private sapi endpoints
    exchange.options["fetchMargins"] = False
    order = {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "qd-1", "transactTime": NOW,
             "price": "0.00000000", "origQty": "0.00100000", "executedQty": "0.00100000",
             "cummulativeQuoteQty": "42.41235000", "status": "FILLED", "timeInForce": "GTC", "type": "MARKET",
             "side": "BUY", "workingTime": NOW, "fills": [], "selfTradePreventionMode": "NONE"}
    replay = install_replay(exchange, extra=[{"method": "POST", "path": "/api/v3/order",
                                              "params": {"newClientOrderId": "qd-1", "side": "BUY"}, "body": order}])
    exchange.milliseconds = lambda: NOW
    placed = exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "qd-1"})
    assert placed["clientOrderId"] == "qd-1" and placed["status"] == "closed" and placed["filled"] == 0.001
    call = replay.calls_to("/api/v3/order")[0]
    assert call.method == "POST" and "signature" not in call.params and call.params["quantity"] == "0.001"
    with pytest.raises(UnrecordedRequest, match="POST /api/v3/order"):
        exchange.create_order("BTC/USDT", "market", "sell", 0.001, params={"newClientOrderId": "qd-2"})
