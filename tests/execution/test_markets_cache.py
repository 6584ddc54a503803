"""The desk's markets cached beside state.db let a live restart re-arm protection before `load_markets` (issue 13:
protected within 10 s of the start), and only when the cache is fresh, for this endpoint and names every symbol.
Real ccxt binance against the exchange twin over HTTP."""

from __future__ import annotations

import dataclasses
import json
import time

from engine.config import Settings, settings_with
from engine.execution import markets_cache
from engine.execution.exchange_client import API_KEY_ENV, API_SECRET_ENV
from engine.execution.live_start import connect_exchange, load_all_markets
from tests.support.twin import twin  # noqa: F401 - fixture

SYMBOLS = ("BTC/USDT", "BTC/USDT:USDT")


def _settings(tmp_path, base_url: str, hours: float = 24.0) -> Settings:
    s = settings_with(Settings(), data={"source": "ccxt:binance", "symbols": SYMBOLS},
                      store={"path": str(tmp_path / "state.db"), "url": ""})
    return dataclasses.replace(s, strategies={}, exchange=dataclasses.replace(
        s.exchange, base_url=base_url, markets_cache_hours=hours))


def _env(twin) -> dict[str, str]:  # noqa: F811
    return {API_KEY_ENV: twin.api_key, API_SECRET_ENV: twin.api_secret}


def _cache_file(tmp_path):
    (path,) = tmp_path.glob("markets.binance.*.json")
    return path


def test_a_restart_uses_the_desks_cached_markets_then_reloads_every_market(tmp_path, twin):  # noqa: F811
    settings = _settings(tmp_path, twin.base_url)
    first = connect_exchange(settings, _env(twin), markets_cache=True)
    assert first.markets_from_cache is False and len(first.markets) > len(SYMBOLS)
    path = _cache_file(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(json.loads(path.read_text())["markets"]) == sorted(SYMBOLS)  # only the desk's own markets

    second = connect_exchange(settings, _env(twin), markets_cache=True)
    assert second.markets_from_cache is True and sorted(second.markets) == sorted(SYMBOLS)
    for s in SYMBOLS:  # what protective orders need: ids, precision, limits, market type
        for key in ("id", "precision", "limits", "spot", "linear"):
            assert second.markets[s][key] == first.markets[s][key], (s, key)
    assert second.amount_to_precision("BTC/USDT", 0.0123456) == first.amount_to_precision("BTC/USDT", 0.0123456)
    assert second.fetch_order_book("BTC/USDT")["bids"]  # the client works on the cached markets

    load_all_markets(second, settings)
    assert second.markets_from_cache is False and sorted(second.markets) == sorted(first.markets)


def test_a_stale_foreign_corrupt_or_incomplete_cache_is_not_used(tmp_path, twin):  # noqa: F811
    settings = _settings(tmp_path, twin.base_url, hours=1.0)
    connect_exchange(settings, _env(twin), markets_cache=True)
    path = _cache_file(tmp_path)
    good = path.read_text()
    endpoint = json.loads(good)["endpoint"]
    assert markets_cache.load(path, SYMBOLS, 3600, endpoint) is not None  # the control: fresh and complete

    doc = json.loads(good)
    doc["written_at"] = time.time() - 2 * 3600
    path.write_text(json.dumps(doc))
    assert markets_cache.load(path, SYMBOLS, 3600, endpoint) is None  # older than markets_cache_hours
    assert connect_exchange(settings, _env(twin), markets_cache=True).markets_from_cache is False  # and the full load rewrote it
    assert markets_cache.load(path, SYMBOLS, 3600, endpoint) is not None

    assert markets_cache.load(path, SYMBOLS, 3600, "binance@live") is None  # written for the twin, not the exchange
    assert markets_cache.load(path, (*SYMBOLS, "ETH/USDT"), 3600, endpoint) is None  # a symbol it does not name
    assert markets_cache.load(path, SYMBOLS, 0, endpoint) is None  # markets_cache_hours = 0: off
    path.write_text(good[: len(good) // 2])
    assert markets_cache.load(path, SYMBOLS, 3600, endpoint) is None  # half-written file
    assert connect_exchange(settings, _env(twin), markets_cache=True).markets_from_cache is False
    off = _settings(tmp_path, twin.base_url, hours=0.0)
    assert connect_exchange(off, _env(twin), markets_cache=True).markets_from_cache is False


def test_the_prompt_and_the_watchdog_neither_read_nor_write_the_cache(tmp_path, twin):  # noqa: F811
    settings = _settings(tmp_path, twin.base_url)
    assert connect_exchange(settings, _env(twin)).markets_from_cache is False
    assert list(tmp_path.glob("markets.*")) == []
    connect_exchange(settings, _env(twin), markets_cache=True)
    assert connect_exchange(settings, _env(twin)).markets_from_cache is False  # a cache there: still a full load


def test_a_postgres_desk_keeps_the_cache_in_the_engines_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the engine's working directory (its logs go there too)
    path = markets_cache.cache_path(None, "binance", "")
    assert path == tmp_path / "markets.binance.live.json"
    markets_cache.save(path, {"BTC/USDT": {"id": "BTCUSDT"}}, ["BTC/USDT"], "binance@live")
    assert markets_cache.load(path, ["BTC/USDT"], 3600, "binance@live") == {"BTC/USDT": {"id": "BTCUSDT"}}
    assert markets_cache.load(None, ["BTC/USDT"], 3600, "binance@live") is None
