"""The research registry and the console's audit/trials views on each store backend. PostgreSQL reserves `user` and
`window`: unquoted, `SELECT user` reads the database login (every audit row said "postgres"), `window` is a syntax
error (no trial could be recorded), and psycopg has no lastrowid (every backtest run got id 0)."""

from __future__ import annotations

import numpy as np

from engine.backtest.registry import record_run, record_trial
from engine.control.views import audit_view, trials_view
from engine.store import open_store
from engine.store.ops import audit


def test_audit_view_names_the_operator_not_the_database_login(backend_url: str) -> None:
    store = open_store(backend_url)
    try:
        audit(store, "cli", "command.halt", {"reason": "t"}, user="alice")
        with store.connect() as conn:
            rows = audit_view(conn)
        assert [(r["source"], r["user"], r["action"]) for r in rows] == [("cli", "alice", "command.halt")]
    finally:
        store.dispose()


def test_runs_and_trials_are_recorded_and_listed(backend_url: str) -> None:
    store = open_store(backend_url)
    try:
        ids = [record_run(store, kind="walkforward", strategy="s", params={"k": i}, symbols=["BTC/USDT"],
                          timeframe="1h", start_ts=0, end_ts=1, dataset_hash="ds", metrics={"sharpe": 1.0},
                          lookahead=None) for i in range(2)]
        assert ids[0] > 0 and ids[1] == ids[0] + 1
        rng = np.random.default_rng(7)
        for w in (0, 1):
            record_trial(store, "ds", "s", {"k": w}, rng.normal(0, 0.01, 200), phase="in_sample", window=w,
                         run_id=ids[1])
        with store.connect() as conn:
            listed = trials_view(conn, ids[1])
        assert sorted(r["window"] for r in listed) == [0, 1]
    finally:
        store.dispose()
