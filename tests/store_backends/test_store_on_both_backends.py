"""The same store behaviour on SQLite and on a real PostgreSQL server (127.0.0.1): schema and migrations, every
market-data writer through real ingest from the simulator, idempotent upserts, quarantine, alerts, audit, trading
state, commands, instance stages and APScheduler's job store. Parametrised by `backend_url` (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect, select

from engine.config import Settings
from engine.data.factory import make_source
from engine.data.ingest import ingest_candles, ingest_funding, ingest_order_book, ingest_trades
from engine.risk.trading_state import TradingState, TransitionError, get_state, set_state
from engine.store import SCHEMA_VERSION, open_readonly, open_store
from engine.store.candles import candle_series, load_candles, load_candles_dbapi, upsert_candles
from engine.store.market_repo import candle_bounds, quarantine_counts, quarantine_rows
from engine.store.ops import ack_alert, audit, list_alerts, raise_alert
from engine.store.schema import audit_log, metadata
from engine.trading import lifecycle

MIN = 60_000
NOW = 1_763_769_600_000 + 17 * MIN + 25_000


@pytest.fixture
def st(backend_url: str):  # noqa: ANN201
    store = open_store(backend_url)
    yield store
    store.dispose()


def test_schema_is_complete_and_reopen_is_idempotent(st, backend_url: str) -> None:  # noqa: ANN001
    assert st.schema_version() == SCHEMA_VERSION
    tables = set(inspect(st.engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    again = open_store(backend_url)
    assert again.schema_version() == SCHEMA_VERSION
    again.dispose()
    ro = open_readonly(backend_url)
    assert ro.schema_version() == SCHEMA_VERSION
    ro.dispose()


def test_simulator_ingest_is_exact_and_idempotent(st) -> None:  # noqa: ANN001
    clock = {"now": NOW}
    sim = make_source("sim", Settings(), clock=lambda: clock["now"])
    since = NOW - 25_000 - 6 * 3_600_000
    first = ingest_candles(st, sim, "BTC/USDT", "1m", since)
    assert first.ok and first.new_after_end == 360, first.summary()
    again = ingest_candles(st, sim, "BTC/USDT", "1m", since, full=True)
    assert (again.inserted, again.changed, again.unchanged) == (0, 0, 360)
    fast, slow = load_candles(st, "sim", "BTC/USDT", "1m"), load_candles_dbapi(st, "sim", "BTC/USDT", "1m")
    assert len(fast) == 360 and fast.equals(slow)
    assert candle_bounds(st, "sim", "BTC/USDT", "1m")[0] == 360
    assert [s[:3] for s in candle_series(st)] == [("sim", "BTC/USDT", "1m")]

    trades = ingest_trades(st, sim, "BTC/USDT", NOW - 10 * MIN, NOW)
    assert trades.ok and trades.inserted > 0
    assert ingest_trades(st, sim, "BTC/USDT", NOW - 10 * MIN, NOW).inserted == 0
    funding = ingest_funding(st, sim, "BTC/USDT:USDT", NOW - 3 * 86_400_000, NOW)
    assert funding.ok and funding.inserted >= 8
    book = ingest_order_book(st, sim, "BTC/USDT")
    assert book.ok


def test_upsert_changes_only_what_differs_and_quarantine_is_not_repeated(st) -> None:  # noqa: ANN001
    rows = [(1_700_000_000_000 + i * MIN, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 3.0) for i in range(2_000)]
    assert upsert_candles(st, "x", "A/B", "1m", rows) == 2_000
    assert upsert_candles(st, "x", "A/B", "1m", rows) == 0
    rows[5] = (rows[5][0], 99.0, 120.0, 90.0, 100.0, 3.0)
    assert upsert_candles(st, "x", "A/B", "1m", rows) == 1
    assert load_candles(st, "x", "A/B", "1m").iloc[5]["open"] == 99.0
    bad = [(1, {"close": -1}, "close: negative"), (2, {"close": "nan"}, "close: not a number")]
    assert quarantine_rows(st, "candles", "x", "x:A/B:1m", bad) == (2, 0)
    assert quarantine_rows(st, "candles", "x", "x:A/B:1m", bad) == (0, 2)
    assert quarantine_counts(st) == {"x:A/B:1m": 2}


def test_alerts_audit_and_trading_state(st) -> None:  # noqa: ANN001
    alert_id = raise_alert(st, "critical", "trigger.vpin_cdf", "toxic flow", {"cdf": 0.99})
    assert [a.rule for a in list_alerts(st, unacked_only=True)] == ["trigger.vpin_cdf"]
    assert ack_alert(st, alert_id, "ops") and not ack_alert(st, alert_id, "ops")
    audit(st, "cli", "test.action", {"k": 1}, user="ops")
    set_state(st, TradingState.HALTED, "operator stop", "cli", "ops")
    with pytest.raises(TransitionError):
        set_state(st, TradingState.ACTIVE, "resume", "cli", "ops")  # needs confirmation
    set_state(st, TradingState.ACTIVE, "resume", "cli", "ops", confirmed=True)
    assert get_state(st).state == TradingState.ACTIVE
    with st.connect() as conn:
        actions = [r[0] for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]
    assert actions == ["alert.ack", "test.action", "trading_state.changed", "trading_state.changed"]


def test_instances_sync_and_stage_moves(st) -> None:  # noqa: ANN001
    settings = Settings()
    instances = lifecycle.sync_instances(st, settings)
    assert instances and all(i.stage in ("research", "paper") for i in instances)
    first = instances[0].id
    paused = lifecycle.set_status(st, first, "paused", "cli", "ops")
    assert paused.status == "paused"
    assert lifecycle.get_instance(st, first).status == "paused"


def test_engine_scheduler_job_store_persists_and_replaces_jobs(st) -> None:  # noqa: ANN001
    from engine.runtime.scheduler import install_jobs, make_scheduler

    sched = make_scheduler(st, misfire_grace_s=5)
    sched.start(paused=True)
    try:
        assert install_jobs(sched, {"equity": 60.0, "monitors": 30.0}) == ["equity", "monitors"]
    finally:
        sched.shutdown(wait=False)
    again = make_scheduler(st, misfire_grace_s=5)
    again.start(paused=True)
    try:
        assert {j.id for j in again.get_jobs()} == {"equity", "monitors"}
        install_jobs(again, {"equity": 120.0})
        jobs = again.get_jobs()
        assert [j.id for j in jobs] == ["equity"] and jobs[0].trigger.interval.total_seconds() == 120.0
    finally:
        again.shutdown(wait=False)


@pytest.mark.parametrize("target", ["postgresql+psycopg:/user@host/db", "mysql://user@host/db", "postgresql://",
                                    "redis://localhost"])
def test_a_target_that_is_neither_a_path_nor_a_supported_url_is_refused(target: str, tmp_path) -> None:  # noqa: ANN001
    """`--state postgresql+psycopg:/...` once created a SQLite file in a folder named `postgresql+psycopg:`."""
    out = _quantdesk(tmp_path, "--state", target, "status")
    assert out.returncode == 2 and "store:" in out.stderr and "Traceback" not in out.stderr + out.stdout
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_postgres_state_url_reaches_the_server(postgres_server, tmp_path) -> None:  # noqa: ANN001
    url = postgres_server.fresh_database()
    open_store(url).dispose()
    out = _quantdesk(tmp_path, "--state", url, "halt")
    assert out.returncode == 0, out.stdout + out.stderr
    st = open_store(url)
    assert get_state(st).state == TradingState.HALTED
    st.dispose()
    assert list(tmp_path.iterdir()) == []


def _quantdesk(cwd, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    """Run the real command line in `cwd`."""
    return subprocess.run([sys.executable, "-c", "from console.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_fast_candle_load_equals_the_generic_path_across_chunks(st, monkeypatch) -> None:  # noqa: ANN001
    """The fast load (native SQLite reader / packed PostgreSQL chunks) returns exactly what the DB-API path does,
    including ranges, an empty range and several keyset-paged chunks."""
    import numpy as np

    monkeypatch.setattr("engine.store.candles_pg.CHUNK_ROWS", 700)
    monkeypatch.setattr("engine.store.candles.NATIVE_MIN_ROWS", 10)
    rng = np.random.default_rng(3)
    n = 2_500
    ts = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * MIN
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    rows = np.column_stack([ts.astype(float), close, close * 1.001, close * 0.999, close, rng.uniform(0, 5, n)])
    upsert_candles(st, "x", "A/B", "1m", rows)
    for since, until in [(None, None), (int(ts[100]), int(ts[1_901])), (int(ts[-1]) + 1, None)]:
        fast = load_candles(st, "x", "A/B", "1m", since, until)
        assert fast.equals(load_candles_dbapi(st, "x", "A/B", "1m", since, until))
    assert len(load_candles(st, "x", "A/B", "1m")) == n


def test_a_command_wakes_a_30s_poller_at_once_on_each_backend(st, backend_url: str) -> None:  # noqa: ANN001
    """The doorbell on each backend (a Unix datagram on SQLite, LISTEN/NOTIFY on PostgreSQL, which reaches engines
    on other hosts): a command queued by a front end is claimed long before the poller's 30 s poll."""
    import time

    from engine.config import LifecycleConfig
    from engine.control.client import ControlClient
    from engine.control.commands import CommandProcessor, EngineHooks
    from tests.support.waiting import wait_for

    hooks = EngineHooks(cancel_all=lambda _i: 0, flatten=lambda: {"canceled": 0, "closed": 0, "positions_left": 0},
                        retrain=lambda s: s, stop=lambda: None)
    proc = CommandProcessor(st, hooks, poll_ms=30_000, lifecycle_cfg=LifecycleConfig())
    proc.start()
    try:
        assert proc.doorbell is not None and proc.doorbell.bound
        wait_for(lambda: proc.polls >= 1, 10, "the poller's first poll")
        # on PostgreSQL the front end spells the server differently (as another host would reach it): a wake-up
        # keyed on the URL (the old host-local socket) cannot find the engine; LISTEN/NOTIFY in the database does
        url = backend_url.replace("@127.0.0.1:", "@localhost:")
        client = ControlClient(url, source="cli", user="ops", timeout_s=10.0, heartbeat_timeout_s=3600)
        client.engine_alive = lambda: True  # the poller above is the engine in this test
        t0 = time.monotonic()
        result = client.halt("doorbell test")
        assert result.ok, result.message
        assert time.monotonic() - t0 < 5.0, "the doorbell did not wake the 30 s poller"
        assert get_state(st).state == TradingState.HALTED
    finally:
        proc.stop()


@pytest.mark.parametrize("copy_min_rows", [1, 10**9], ids=["copy", "statements"])
def test_bulk_upsert_paths_store_and_count_the_same(st, monkeypatch, copy_min_rows: int) -> None:  # noqa: ANN001
    """PostgreSQL's binary-COPY upsert and the multi-row statement path give the same rows and change counts for
    unsorted input with repeated timestamps, overlaps and changes (on SQLite both ids run the statement path)."""
    import numpy as np

    monkeypatch.setattr("engine.store.candles.PG_COPY_MIN_ROWS", copy_min_rows)
    rng = np.random.default_rng(5)
    n = 3_000
    ts = 1_650_000_000_000 + np.arange(n, dtype=np.int64) * MIN
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    rows = np.column_stack([ts.astype(float), close, close * 1.001, close * 0.999, close, rng.uniform(0, 5, n)])
    shuffled = rows[rng.permutation(n)]
    repeated = np.vstack([shuffled, rows[:10] * [1, 2, 2, 2, 2, 1]])  # the later duplicate of a timestamp wins
    assert upsert_candles(st, "x", "C/D", "1m", repeated) == n
    assert upsert_candles(st, "x", "C/D", "1m", rows[:1_000]) == 10  # the 10 doubled rows go back
    assert upsert_candles(st, "x", "C/D", "1m", rows) == 0
    later = np.column_stack([(ts + n * MIN).astype(float), rows[:, 1:]])
    changed = rows[-500:].copy()
    changed[:7, 4] += 1.0
    assert upsert_candles(st, "x", "C/D", "1m", np.vstack([changed, later])) == 7 + n
    got = load_candles(st, "x", "C/D", "1m")
    assert len(got) == 2 * n and got.index.is_monotonic_increasing
    assert got["close"].iloc[n - 500:n - 493].tolist() == (rows[-500:-493, 4] + 1.0).tolist()
    assert got["volume"].iloc[:10].tolist() == rows[:10, 5].tolist()
