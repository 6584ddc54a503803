"""The engine's store keeps SQLite's page caches bounded as state.db grows (issue 17: each of a running engine's 8-9
pooled connections filled a 2 MB page cache over weeks of a growing file)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from engine.store import open_store
from engine.store.candles import upsert_candles
from engine.store.page_cache import ENGINE_PAGE_CACHE_KIB, cap_page_cache, sqlite_memory_used

DAY_BARS = 1440 * 6  # a simulated day of 1m bars for 6 instruments
MIN = 60_000


def _add_days(store, first_day: int, days: int) -> None:  # noqa: ANN001
    for d in range(first_day, first_day + days):
        for inst in range(6):
            ts = (1_700_000_000_000 + d * 86_400_000 + np.arange(1440) * MIN).astype(float)
            rows = np.column_stack([ts] + [np.full(1440, 100.0 + inst + d)] * 5)
            upsert_candles(store, "sim", f"S{inst}/USDT", "1m", rows)


def _scan_on_connections(store, n: int) -> int:  # noqa: ANN001
    """Bytes SQLite holds more than before, after `n` connections checked out at once each read every bar (the
    engine's threads: jobs, heartbeat, command poller, alerts)."""
    before = sqlite_memory_used()
    held, done, release = [], threading.Barrier(n + 1), threading.Event()

    def reader() -> None:
        with store.connect() as conn:
            conn.exec_driver_sql("SELECT SUM(close), COUNT(*) FROM candles").fetchall()
            held.append(1)
            done.wait()
            release.wait()

    threads = [threading.Thread(target=reader) for _ in range(n)]
    for t in threads:
        t.start()
    done.wait()
    used = sqlite_memory_used() - before
    release.set()
    for t in threads:
        t.join()
    assert len(held) == n
    return used


def test_the_engines_pooled_connections_stay_within_their_page_cache_as_the_store_grows(tmp_path: Path) -> None:
    capped = cap_page_cache(open_store(tmp_path / "engine.db"))
    plain = open_store(tmp_path / "plain.db")
    try:
        n, bound = 6, 6 * (ENGINE_PAGE_CACHE_KIB + 256) * 1024  # the caches plus schema and statements
        seen, plain_seen = [], []
        for first, days in ((0, 3), (3, 3), (6, 6)):  # the file grows ~3 MB, then ~6 MB, then ~12 MB
            _add_days(capped, first, days)
            _add_days(plain, first, days)
            seen.append(_scan_on_connections(capped, n))
            plain_seen.append(_scan_on_connections(plain, n))
        assert max(seen) < bound, [s / 2**20 for s in seen]
        # without the cap the same connections hold ~2 MB each once the file outgrows that (the growth it stops)
        assert plain_seen[-1] > 2 * bound and plain_seen[-1] > plain_seen[0], [s / 2**20 for s in plain_seen]
        with capped.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -ENGINE_PAGE_CACHE_KIB
    finally:
        capped.dispose()
        plain.dispose()


def test_the_engine_opens_its_store_with_the_capped_page_cache(tmp_path: Path) -> None:
    from engine.config import Settings, settings_with
    from engine.runtime.service import EngineService

    settings = settings_with(Settings(), store={"path": str(tmp_path / "state.db")})
    store = EngineService(settings, install_signals=False)._open_store()
    try:
        with store.connect() as conn, store.connect() as other:  # the pooled connection and a new one
            for c in (conn, other):
                assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -ENGINE_PAGE_CACHE_KIB
    finally:
        store.dispose()
