"""The engine's Binance websocket client parses public trade events exactly as ccxt.pro does, and faster.

The direct path (engine/data/binance_trades.py) must give the same unified trade as ccxt's own parse for every
public spot trade event, and hand anything else (other events, futures markets, odd field types) to ccxt's parse.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

pytest.importorskip("ccxt.pro")

from engine.data.binance_trades import _direct, binance_stream_class  # noqa: E402
from engine.data.ccxt_source import build_ccxt_exchange  # noqa: E402

SPOT = {"id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "baseId": "BTC", "quoteId": "USDT",
        "settle": None, "settleId": None, "type": "spot", "spot": True, "margin": True, "swap": False,
        "future": False, "option": False, "contract": False, "linear": None, "inverse": None,
        "contractSize": None, "expiry": None, "strike": None, "optionType": None, "active": True,
        "precision": {"amount": 0.00001, "price": 0.01}, "limits": {}, "info": {}}
PERP = {**SPOT, "symbol": "BTC/USDT:USDT", "settle": "USDT", "settleId": "USDT", "type": "swap", "spot": False,
        "margin": False, "swap": True, "contract": True, "linear": True, "inverse": False, "contractSize": 1.0}


def _clients() -> tuple[Any, Any]:
    import ccxt.pro

    plain, fast = ccxt.pro.binance(), binance_stream_class()()
    for ex in (plain, fast):
        ex.set_markets([SPOT, PERP])
    return plain, fast


def _decimal(rng: random.Random) -> str:
    whole = str(rng.choice([0, 1, 7, 42, 60_000, 123_456_789]))
    places = rng.choice([0, 1, 2, 5, 8, 12])
    return whole if places == 0 else f"{whole}.{''.join(rng.choice('0123456789') for _ in range(places))}"


def _trade(rng: random.Random) -> dict[str, Any]:
    ts = rng.choice([0, 999, 1_000, 1_700_000_000_000, 1_700_000_000_999, rng.randrange(0, 4_102_444_800_000)])
    event = {"e": "trade", "E": ts + rng.randrange(0, 5), "s": "BTCUSDT", "t": rng.randrange(0, 10**13),
             "p": _decimal(rng), "q": _decimal(rng), "T": ts, "m": rng.random() < 0.5, "M": True}
    if rng.random() < 0.2:
        event.update(b=rng.randrange(10**9), a=rng.randrange(10**9))
    return event


def test_public_spot_trades_parse_exactly_as_ccxt_does() -> None:
    plain, fast = _clients()
    rng = random.Random(7)
    for _ in range(3000):
        event = _trade(rng)
        want = plain.parse_ws_trade(dict(event), plain.market("BTC/USDT"))
        got = fast.parse_ws_trade(dict(event), fast.market("BTC/USDT"))
        assert got == want, event
        assert list(got) == list(want)


@pytest.mark.parametrize("change", [
    {"p": "6e4"}, {"p": 60000.5}, {"q": ""}, {"q": "-1"}, {"p": ".5"}, {"t": "123"}, {"T": "1700000000000"},
    {"m": 1}, {"e": "aggTrade", "a": 5, "f": 1, "l": 2}, {"x": "TRADE", "L": "1", "l": "2", "n": "0", "N": "BNB"},
    {"X": "MARKET"}, {"s": "ETHUSDT"},
], ids=lambda c: ",".join(c))
def test_other_events_and_odd_fields_take_ccxts_own_parse(change: dict[str, Any]) -> None:
    plain, fast = _clients()
    event = {"e": "trade", "E": 1_700_000_000_005, "s": "BTCUSDT", "t": 9, "p": "60000.10", "q": "0.01000",
             "T": 1_700_000_000_001, "m": False, "M": True, **change}
    for symbol in ("BTC/USDT", "BTC/USDT:USDT"):
        try:
            want = plain.parse_ws_trade(dict(event), plain.market(symbol))
        except Exception as exc:  # noqa: BLE001 - ccxt's parse may refuse: the client must refuse the same way
            with pytest.raises(type(exc)):
                fast.parse_ws_trade(dict(event), fast.market(symbol))
            continue
        assert fast.parse_ws_trade(dict(event), fast.market(symbol)) == want


def test_the_engine_builds_binance_streams_without_compression_and_with_the_direct_parse() -> None:
    ex = build_ccxt_exchange("binance", pro=True)
    assert isinstance(ex, binance_stream_class())
    assert ex.options["ws"]["compress"] == 0 and ex.options["ws"]["cost"] == 5  # ccxt's own ws options kept
    assert build_ccxt_exchange("binance", pro=True, ws_compress=True).options["ws"]["compress"] == 15


def test_every_public_spot_trade_takes_the_direct_path() -> None:
    """The speed claim in benchmarks/bench_stream.py rests on this: no public spot trade falls back to ccxt's parse."""
    plain, _fast = _clients()
    rng = random.Random(1)
    spot, perp = plain.market("BTC/USDT"), plain.market("BTC/USDT:USDT")
    events = [_trade(rng) for _ in range(500)]
    assert all(_direct(e, spot) for e in events)
    assert not any(_direct(e, perp) for e in events)


def test_a_client_configured_for_string_numbers_keeps_ccxts_parse() -> None:
    plain, fast = _clients()
    plain.number = fast.number = str
    event = {"e": "trade", "E": 5, "s": "BTCUSDT", "t": 9, "p": "60000.10", "q": "0.01000", "T": 1, "m": True,
             "M": True}
    assert fast.parse_ws_trade(dict(event), fast.market("BTC/USDT")) == plain.parse_ws_trade(
        dict(event), plain.market("BTC/USDT"))


def test_trade_messages_land_in_ccxts_trade_cache_exactly_as_through_ccxts_routing() -> None:
    """Whole messages through handle_message on a spot and a futures websocket url (real ccxt Client objects, not
    connected): the trade caches and the resolved futures' results equal ccxt's, and a market reload is seen."""
    import asyncio

    from ccxt.async_support.base.ws.client import Client

    async def run() -> None:
        plain, fast = _clients()
        rng = random.Random(11)
        events = [_trade(rng) for _ in range(400)]
        events[50:50] = [{"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 7, "p": "1.5", "q": "2", "f": 1, "l": 2,
                          "T": 1_700_000_000_000, "m": False, "M": True}, {"result": None, "id": 3}]
        for url in ("wss://stream.binance.com:9443/ws/0", "wss://fstream.binance.com/ws/0"):
            clients = {}
            for ex in (plain, fast):
                clients[ex] = Client(url, ex.handle_message, None, None, None, {"asyncio_loop": ex.asyncio_loop})
            for i, event in enumerate(events):
                if i == 200:
                    for ex in (plain, fast):
                        ex.set_markets([SPOT, PERP])  # a reload replaces the market objects
                symbol = "BTC/USDT" if url.startswith("wss://stream.") else "BTC/USDT:USDT"
                futures = {ex: clients[ex].future(f"trade::{symbol}") for ex in (plain, fast)}
                for ex in (plain, fast):
                    ex.handle_message(clients[ex], dict(event))
                if "e" in event:
                    assert futures[plain].done(), (url, event)
                    assert list(futures[fast].result()) == list(futures[plain].result())
        assert {k: list(v) for k, v in fast.trades.items()} == {k: list(v) for k, v in plain.trades.items()}
        assert set(fast.trades) == {"BTC/USDT", "BTC/USDT:USDT"}
        await plain.close()
        await fast.close()

    asyncio.run(run())
