"""Fixed desk data written into a real state.db (real schema, real SQLite) for Pilot, snapshot and benchmark runs.

Every timestamp derives from FIXED_NOW, and the app under test gets `clock=lambda: FIXED_NOW`, so screens render
identically on every run.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from engine.store import open_store, raise_alert
from engine.store.db import Store
from engine.store.ops import audit

FIXED_NOW = 1_795_348_800_000  # 2026-11-22 12:00:00 UTC
MIN = 60_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}
INSTANCES = ("quantum_momentum", "macro_trend")


def _symbol(i: int) -> str:
    return SYMBOLS[i % len(SYMBOLS)] if i < len(SYMBOLS) else f"{SYMBOLS[i % 3].split('/')[0]}{i}/USDT"


def build_state(path: Path, *, positions: int = 4, orders: int = 3, alerts: int = 5, state: str = "ACTIVE",
                heartbeat_at: int | None = FIXED_NOW, research: bool = True) -> Store:
    """Create a state.db with a live-looking desk; returns the writable store (caller disposes)."""
    store = open_store(path)
    with store.raw() as conn:
        cur = conn.cursor()
        for inst in INSTANCES:
            cur.execute("INSERT INTO strategy_instances (id, strategy, stage, status, capital, symbols, timeframe, "
                        "params, created_at, stage_changed_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (inst, inst, "paper", "running", 50_000.0, json.dumps(list(SYMBOLS)), "1m", "{}",
                         FIXED_NOW - 86_400_000, FIXED_NOW - 86_400_000, FIXED_NOW - 86_400_000))
        if heartbeat_at is not None:
            board = [{"instance_id": "quantum_momentum", "dsr": 0.0412, "dsr_prob": 0.74, "rank": 1},
                     {"instance_id": "macro_trend", "dsr": -0.0135, "dsr_prob": 0.38, "rank": 2}]
            cur.execute("INSERT INTO engine_status (id, pid, host, mode, started_at, heartbeat_at, version, info) "
                        "VALUES (1, 4242, 'testhost', 'paper', ?, ?, '0.1.0', ?)",
                        (FIXED_NOW - 3_600_000, heartbeat_at, json.dumps({"leaderboard": board})))
        cur.execute("INSERT INTO trading_state VALUES ('global', ?, ?, ?, 'engine')",
                    (state, "fixture" if state == "ACTIVE" else "emergency stop (fixture)", FIXED_NOW - 60_000))
        for i in range(positions):
            sym = _symbol(i)
            inst = INSTANCES[(i // 3) % 2]
            price = PRICES.get(sym, 10.0 + i)
            cur.execute("INSERT INTO positions VALUES (?,?,?,?,?,?,?,?)",
                        (inst, sym, (0.5 if i % 2 == 0 else -0.25) * (1 + i % 5), price * 0.99, 12.5 * i, 1.0, 0.0,
                         FIXED_NOW - 5_000))
        for i in range(orders):
            sym = _symbol(i % max(1, positions))
            cur.execute("INSERT INTO orders (client_order_id, instance_id, symbol, side, type, qty, price, reduce_only,"
                        " status, filled_qty, reason, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (f"qd-{i:05d}", INSTANCES[i % 2], sym, "buy" if i % 2 == 0 else "sell", "limit",
                         0.1 + (i % 7) * 0.05, PRICES.get(sym, 10.0) * (0.995 if i % 2 == 0 else 1.005), 0,
                         "open", 0.0, "", FIXED_NOW - (orders - i) * 1_000, FIXED_NOW - (orders - i) * 1_000))
        for k, inst in enumerate(INSTANCES):
            for j, sym in enumerate(SYMBOLS):
                cur.execute("INSERT INTO sizing_decisions (ts, instance_id, symbol, side, meta_prob, payoff_ratio, "
                            "kelly_fraction, raw_size, cap_applied, final_size, vpin_cdf, spread_bps, depth, inputs) "
                            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (FIXED_NOW - 30_000, inst, sym, 1 if (j + k) % 2 == 0 else -1, 0.55 + 0.05 * j,
                             1.5, 0.08 + 0.02 * j, 0.04, "max_trade" if j == 0 else "", 0.012 * (j + 1),
                             0.40 + 0.2 * j, 1.2 + j, 250_000.0 * (3 - j), "{}"))
        for t in range(240):
            ts = FIXED_NOW - (239 - t) * MIN
            equity = 100_000.0 + 800.0 * math.sin(t / 25.0) + 6.0 * t
            for scope, eq in (("portfolio", equity), ("quantum_momentum", equity * 0.52),
                              ("macro_trend", equity * 0.48)):
                cur.execute("INSERT INTO equity_snapshots (ts, scope, equity, cash, gross_exposure, net_exposure, "
                            "unrealized_pnl, realized_pnl) VALUES (?,?,?,?,?,?,?,?)",
                            (ts, scope, eq, eq * 0.6, eq * 0.4, eq * 0.1, 120.0, 340.0))
        for j, sym in enumerate(SYMBOLS):
            for t in range(120):
                if j == 2 and 50 <= t < 55:
                    continue  # a 5-bar gap in SOL
                ts = FIXED_NOW - (120 - t) * MIN
                px = PRICES[sym] * (1 + 0.001 * math.sin(t / 7))
                cur.execute("INSERT INTO candles VALUES ('sim', ?, '1m', ?, ?, ?, ?, ?, ?)",
                            (sym, ts, px, px * 1.001, px * 0.999, px, 10.0 + t))
        cur.execute("INSERT INTO quarantine (created_at, kind, source, series, ts, payload, reason) VALUES "
                    "(?, 'candle', 'sim', 'sim:SOL/USDT:1m', ?, '{}', 'high < low')", (FIXED_NOW - 10 * MIN,
                                                                                     FIXED_NOW - 10 * MIN))
        for i in range(3):
            cur.execute("INSERT INTO twin_trades (ts, instance_id, symbol, client_order_id, live_price, twin_price, "
                        "live_fee, twin_fee, slippage_bps, drift_bps, leg) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (FIXED_NOW - i * MIN, INSTANCES[i % 2], "BTC/USDT", f"tw-{i}", 60_000.0, 59_990.0, 1.0, 1.0,
                         1.5, 1.0 + i, "entry"))
        if research:
            cur.execute("INSERT INTO backtest_runs (created_at, kind, strategy, params, symbols, timeframe, start_ts, "
                        "end_ts, dataset_hash, metrics, sharpe, dsr, n_trials, lookahead_ok, report_path) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (FIXED_NOW - 7_200_000, "walkforward", "quantum_momentum", json.dumps({"search": "tpe"}),
                         json.dumps(list(SYMBOLS)), "1h", FIXED_NOW - 90 * 86_400_000, FIXED_NOW - 86_400_000,
                         "abc123", json.dumps({"pbo": 0.42}), 1.42, 0.91, 3, 1,
                         str(path.parent / "reports" / "run1.md")))
            for n in range(3):
                cur.execute("INSERT INTO trials (created_at, dataset_hash, strategy, params, phase, window, sharpe, "
                            "n_obs, skew, kurtosis, metrics, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,1)",
                            (FIXED_NOW - 7_000_000, "abc123", "quantum_momentum", json.dumps({"lookback": 10 * (n + 1)}),
                             "out_of_sample", n, 1.1 + 0.2 * n, 500, -0.1, 3.2, "{}"))
            for v, role in ((1, "retired"), (2, "champion"), (3, "challenger")):
                cur.execute("INSERT INTO models (created_at, strategy, version, path, sha256, features, train_start, "
                            "train_end, data_hash, cv_scores, oos_score, lib_versions, estimator, role, promoted_at) "
                            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (FIXED_NOW - (4 - v) * 86_400_000, "quantum_momentum", v, f"models/qm/{v}.joblib",
                             f"{v:064x}", "[]", 0, FIXED_NOW - (4 - v) * 86_400_000, "abc", "[0.55, 0.57]",
                             0.53 + 0.01 * v, "{}", "RandomForestClassifier", role,
                             FIXED_NOW - 86_400_000 if role == "champion" else None))
            for n, (ok, err) in enumerate(((1, None), (0, "ValueError: no bars"), (1, None))):
                cur.execute("INSERT INTO job_runs (job_id, started_at, finished_at, ok, result, error) VALUES "
                            "(?,?,?,?,?,?)", ("ingest", FIXED_NOW - (3 - n) * MIN, FIXED_NOW - (3 - n) * MIN + 800,
                                              ok, "42 bars" if ok else None, err))
    (path.parent / "reports").mkdir(exist_ok=True)
    (path.parent / "reports" / "run1.md").write_text("# Tearsheet run 1\n\nSharpe 1.42, DSR 0.91\n")
    sev = ("info", "warning", "critical")
    for i in range(alerts):
        with store.begin() as conn:
            raise_alert(conn, sev[i % 3], ("ingest.quarantine", "trigger.vpin_cdf", "job.error")[i % 3],
                        f"fixture alert {i}", {"i": i}, source="engine")
    with store.begin() as conn:
        fixed = f"{FIXED_NOW} - (100 - id) * 1000"
        conn.exec_driver_sql(f"UPDATE alerts SET ts = {fixed}, last_ts = {fixed}")
        audit(conn, "engine", "engine.started", {"pid": 4242}, user="fixture")
        conn.exec_driver_sql(f"UPDATE audit_log SET ts = {FIXED_NOW}")
    return store


def add_scheduler_job(path: Path, next_run_ms: int | None = None) -> None:
    """Register one interval job in state.db through APScheduler's own SQLAlchemy job store (due at next_run_ms when
    given, else 30 s after now)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    sched = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{path}")}, timezone="UTC")
    sched.add_job("engine.clock:now_ms", "interval", seconds=30, id="ingest", replace_existing=True)
    sched.start(paused=True)
    sched.shutdown(wait=True)
    if next_run_ms is not None:  # a fixed due time (a frozen-clock test): the job store's own column
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE apscheduler_jobs SET next_run_time = ? WHERE id = 'ingest'", (next_run_ms / 1000,))
