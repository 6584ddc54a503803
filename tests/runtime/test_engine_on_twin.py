"""End to end: an engine in paper mode on `ccxt:binance` streaming from the exchange twin (a real `quantdesk venue
serve` process), which is killed and restarted; the engine reconnects, backfills, and its candles equal a REST pull."""

from __future__ import annotations

import json
import socket
import sys

import pytest
from rt_helpers import rows, start_engine, stop_engine, store_ready, wait_for, write_config

from tests.support.twin import twin_exchange
from tests.venue.test_venue_cli import KEY, SECRET, start_serve, stop

MIN = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _streams(store) -> dict:
    got = rows(store, "SELECT info FROM engine_status WHERE id = 1")
    info = json.loads(got[0][0] or "{}") if got else {}
    return {s["stream"]: s for s in info.get("streams", [])}


@pytest.mark.slow
def test_paper_engine_streams_from_the_twin_survives_its_restart_and_backfills(tmp_path, state_url):
    port = _free_port()
    venue_db = tmp_path / "venue.db"
    twin, url, _ = start_serve(venue_db, "--port", str(port), "--speed", "20")
    config = write_config(tmp_path, speed=1.0, extra=f"""
[data]
source = "ccxt:binance"
symbols = ["BTC/USDT", "ETH/USDT"]
backfill_days = 1
pull_interval_s = 20.0
[exchange]
id = "binance"
base_url = "{url}"
reconnect_max_s = 2.0
stream_stale_s = 10.0
""")
    state = state_url
    engine = start_engine(tmp_path, config, state)
    store = None
    try:
        store = wait_for(lambda: store_ready(state), 60, "the engine's store")
        wait_for(lambda: _streams(store).get("trades:BTC/USDT", {}).get("messages", 0) > 0, 120,
                 "streamed trades in the engine's stream stats")
        wait_for(lambda: rows(store, "SELECT COUNT(*) FROM trades WHERE exchange='binance'")[0][0] > 0, 30,
                 "streamed trades stored")
        before = rows(store, "SELECT MAX(ts) FROM candles WHERE exchange='binance' AND symbol='BTC/USDT'")[0][0]
        stop(twin)  # the venue goes away
        wait_for(lambda: not _streams(store).get("ohlcv:BTC/USDT:1m", {}).get("connected", True), 60,
                 "the engine sees the stream drop")
        twin, url2, _ = start_serve(venue_db, "--port", str(port), "--speed", "20")
        assert url2 == url
        wait_for(lambda: _streams(store).get("ohlcv:BTC/USDT:1m", {}).get("backfills", 0) >= 2, 90,
                 "reconnect and REST backfill after the restart")
        wait_for(lambda: rows(store, "SELECT MAX(ts) FROM candles WHERE exchange='binance' AND "
                                     "symbol='BTC/USDT'")[0][0] >= before + 2 * MIN, 180, "two more closed bars")
        st = _streams(store)["ohlcv:BTC/USDT:1m"]
        assert st["reconnects"] >= 1 and st["connected"]
        def decided() -> set[str]:
            return {r[0] for r in rows(store, "SELECT DISTINCT instance_id FROM sizing_decisions")}

        # both strategies trade the stream (their first tick may come after the bars above at the twin's 20x)
        wait_for(lambda: {"quantum_momentum", "macro_trend"} <= decided(), 90, "both strategies' sizing decisions")
        stored = rows(store, "SELECT ts, open, high, low, close, volume FROM candles WHERE exchange='binance' AND "
                             "symbol='BTC/USDT' AND timeframe='1m' ORDER BY ts")
        first, last = stored[0][0], stored[-1][0]
        assert len(stored) == (last - first) // MIN + 1  # no gaps
        fresh = twin_exchange(url, KEY, SECRET).fetch_ohlcv("BTC/USDT", "1m", since=last - 59 * MIN, limit=60)
        assert [list(r) for r in stored if r[0] >= last - 59 * MIN] == [r for r in fresh if r[0] <= last]
    finally:
        stop_engine(engine)
        stop(twin)
        if store is not None:
            store.dispose()
    sys.stdout.write((tmp_path / "engine.stderr").read_text()[-2000:])
