"""Candle store fast paths: multi-row upsert counts and semantics, native loads equal to the DB-API path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.store import open_readonly, open_store
from engine.store.candles import load_candles, load_candles_dbapi, upsert_candles

STEP = 60_000


def bars(start: int, n: int, bump: float = 0.0) -> list[list[float]]:
    """n ccxt-shaped 1m bars from bar index start."""
    return [[j * STEP, 100.0 + j + bump, 101.0 + j, 99.0 + j, 100.5 + j, 10.0 + j % 7] for j in range(start, start + n)]


def stored(store) -> dict[int, tuple[float, ...]]:  # noqa: ANN001
    """Every stored bar of the test series, by timestamp."""
    with store.connect() as conn:
        rows = conn.exec_driver_sql("SELECT ts, open, high, low, close, volume FROM candles "
                                    "WHERE exchange = 'sim' AND symbol = 'BTC/USDT' AND timeframe = '1m'").fetchall()
    return {int(r[0]): tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("n", [1, 2, 127, 128, 129, 255, 256, 300, 1001])
def test_upsert_counts_every_size_across_statement_chunks(store, n: int) -> None:  # noqa: ANN001
    rows = bars(0, n)
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == n
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == 0
    assert stored(store) == {int(r[0]): tuple(r[1:]) for r in rows}
    assert isinstance(next(iter(stored(store))), int)


def test_append_after_stored_end_counts_only_new_bars(store) -> None:  # noqa: ANN001
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", bars(0, 300)) == 300
    # The usual ingest page: the tail already stored (identical) plus bars newer than the stored end.
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", bars(250, 250)) == 200
    assert sorted(stored(store)) == [i * STEP for i in range(500)]


def test_mixed_batch_of_new_identical_and_changed_rows(store) -> None:  # noqa: ANN001
    upsert_candles(store, "sim", "BTC/USDT", "1m", bars(0, 400))
    batch = bars(0, 400)
    for i in (3, 150, 399):
        batch[i] = [i * STEP, 1.0, 2.0, 0.5, 1.5, 42.0]  # revised bars
    batch += bars(400, 77)  # new after the end
    batch = bars(-5, 5) + batch  # backfill before the start
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", batch) == 3 + 77 + 5
    assert stored(store) == {int(r[0]): tuple(r[1:]) for r in batch}
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", batch) == 0


def test_unsorted_input_with_repeated_timestamps_keeps_the_last(store) -> None:  # noqa: ANN001
    rows = bars(0, 200)
    rng = np.random.default_rng(7)
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    late = [[5 * STEP, 1.0, 1.0, 1.0, 1.0, 1.0], [9 * STEP, 2.0, 2.0, 2.0, 2.0, 2.0]]
    early = [[5 * STEP, 7.0, 7.0, 7.0, 7.0, 7.0]]
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", early + shuffled + late) == 200
    expected = {int(r[0]): tuple(r[1:]) for r in rows + late}
    assert stored(store) == expected


def test_array_input_and_bad_shapes(store) -> None:  # noqa: ANN001
    arr = np.array(bars(0, 130), dtype=np.float64)
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", arr) == 130
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", arr.astype(np.float32).astype(np.float64)) == 0
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", np.empty((0, 6))) == 0
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", iter(bars(130, 3))) == 3
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", [(131 * STEP, 1, 2, 0, 1, 5, "extra")]) == 1
    with pytest.raises(ValueError):
        upsert_candles(store, "sim", "BTC/USDT", "1m", np.zeros((3, 5)))
    with pytest.raises(ValueError):
        upsert_candles(store, "sim", "BTC/USDT", "1m", [[0, 1, 2, 3]])
    with pytest.raises(ValueError):
        upsert_candles(store, "sim", "BTC/USDT", "1m", [[0, 1, 2, 3, 4, 5], [STEP, "x", 2, 3, 4, 5]])


def test_rows_of_other_number_types_are_converted(store) -> None:  # noqa: ANN001
    rows = [(np.int64(i * STEP), np.float64(1.5), 2, 1, 1.5, np.float32(3.0)) for i in range(140)]
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", rows) == 140
    assert upsert_candles(store, "sim", "BTC/USDT", "1m", [[float(r[0]), 1.5, 2.0, 1.0, 1.5, 3.0] for r in rows]) == 0
    assert set(map(type, stored(store))) == {int}
    assert set(stored(store).values()) == {(1.5, 2.0, 1.0, 1.5, 3.0)}


def fill_two_series(store) -> None:  # noqa: ANN001
    """Two series, one with a quote and a question mark in its symbol."""
    upsert_candles(store, "sim", "BTC/USDT", "1m", bars(0, 1000))
    upsert_candles(store, "sim", "O'DD?/USDT", "1m", bars(0, 50, bump=0.25))


@pytest.fixture
def native_always(monkeypatch):  # noqa: ANN201
    """The native reader for every series size (it normally starts at NATIVE_MIN_ROWS rows)."""
    from engine.store import candles

    if candles._native() is None:
        pytest.skip("no shared libsqlite3 in this process")
    monkeypatch.setattr(candles, "NATIVE_MIN_ROWS", 0)


@pytest.mark.parametrize(("symbol", "since", "until"), [
    ("BTC/USDT", None, None), ("BTC/USDT", 10 * STEP, 900 * STEP), ("BTC/USDT", 999 * STEP, None),
    ("BTC/USDT", 5_000 * STEP, None), ("O'DD?/USDT", None, 20 * STEP), ("ETH/USDT", None, None)])
def test_native_loader_equals_the_dbapi_path(store, native_always, symbol: str, since: int | None,  # noqa: ANN001
                                             until: int | None) -> None:
    fill_two_series(store)
    fast = load_candles(store, "sim", symbol, "1m", since=since, until=until)
    generic = load_candles_dbapi(store, "sim", symbol, "1m", since=since, until=until)
    pd.testing.assert_frame_equal(fast, generic, check_exact=True)
    assert fast.index.name == "ts" and str(fast.index.tz) == "UTC" and fast.index.is_monotonic_increasing
    assert list(fast.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in fast.dtypes)


def test_native_loader_is_used_on_a_readonly_store_and_sees_fresh_commits(store, state_path: Path, native_always,
                                                                           monkeypatch) -> None:  # noqa: ANN001
    fill_two_series(store)
    monkeypatch.setattr("engine.store.candles.load_candles_dbapi",
                        lambda *a, **k: pytest.fail("generic path used"))
    ro = open_readonly(state_path)
    fast = load_candles(ro, "sim", "BTC/USDT", "1m")
    assert len(fast) == 1000 and fast["open"].iloc[-1] == 1099.0
    upsert_candles(store, "sim", "BTC/USDT", "1m", bars(1000, 5))  # committed by another connection, still in WAL
    assert len(load_candles(ro, "sim", "BTC/USDT", "1m")) == 1005
    ro.dispose()


def test_native_reads_leave_the_store_connections_working(store, native_always) -> None:  # noqa: ANN001
    # A second SQLite copy in the process (connectorx) dropped these connections' locks and lost WAL frames.
    with store.connect() as held:
        held.exec_driver_sql("SELECT 1").fetchall()
        for i in range(5):
            upsert_candles(store, "sim", "BTC/USDT", "1m", bars(i * 100, 100))
            assert len(load_candles(store, "sim", "BTC/USDT", "1m")) == (i + 1) * 100
        assert held.exec_driver_sql("SELECT COUNT(*) FROM candles").scalar() == 500
    wal = Path(f"{store.path}-wal")
    assert wal.exists() and Path(f"{store.path}-shm").exists()


def test_small_series_and_missing_native_library_use_the_dbapi_path(store, monkeypatch) -> None:  # noqa: ANN001
    from engine.store import candles

    fill_two_series(store)
    expected = load_candles_dbapi(store, "sim", "BTC/USDT", "1m")
    pd.testing.assert_frame_equal(load_candles(store, "sim", "BTC/USDT", "1m"), expected)  # 1000 < NATIVE_MIN_ROWS
    monkeypatch.setattr(candles, "NATIVE_MIN_ROWS", 0)
    monkeypatch.setattr(candles, "_native", lambda: None)
    pd.testing.assert_frame_equal(load_candles(store, "sim", "BTC/USDT", "1m"), expected)


def test_in_memory_store_uses_the_generic_path() -> None:
    st = open_store("sqlite://")
    try:
        assert upsert_candles(st, "sim", "BTC/USDT", "1m", bars(0, 10)) == 10
        frame = load_candles(st, "sim", "BTC/USDT", "1m")
        assert len(frame) == 10 and frame.index.name == "ts"
    finally:
        st.dispose()
