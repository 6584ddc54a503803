"""Read-only queries over state.db for the console screens.

The console never writes state: commands go through `engine.control.client`. Everything here runs in thread workers
(never on the UI thread) and returns plain frozen dataclasses. Cheap "has anything changed" probes (max id / max ts)
let the screens skip the heavier queries on a quiet desk, which keeps idle CPU low at 4 Hz.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy import text

from engine.control.snapshots import DeskData, StateUnavailable, StatusSnapshot
from engine.clock import now_ms, timeframe_ms
from engine.store import Store, StoreError, open_readonly

__all__ = ["DeskData", "StateReader", "StateUnavailable", "StatusSnapshot"]

DAY_MS = 86_400_000
OPEN_ORDER_STATUSES = ("new", "open", "partial")


@dataclass
class _Probe:
    """Last seen change markers, so unchanged data is not re-read."""

    values: dict[str, Any] = field(default_factory=dict)

    def changed(self, key: str, marker: Any) -> bool:
        """True (and remember the marker) when the marker moved since the last call."""
        if self.values.get(key, object()) == marker:
            return False
        self.values[key] = marker
        return True


class StateReader:
    """Read-only access to one state.db; safe to call from worker threads (one query batch at a time)."""

    def __init__(self, url_or_path: str | Path, *, clock: Callable[[], int] = now_ms, exchange: str = "sim",
                 timeframe: str = "1m", heartbeat_timeout_s: float = 5.0) -> None:
        self.target = url_or_path
        self.clock = clock
        self.exchange = exchange
        self.timeframe = timeframe
        self.heartbeat_timeout_ms = int(heartbeat_timeout_s * 1000)
        self._store: Store | None = None
        self._conn: Any = None
        self._last_status: StatusSnapshot | None = None
        self._lock = threading.Lock()
        self._probe = _Probe()
        self._peak: tuple[int, float] = (-1, float("-inf"))

    # --- plumbing --------------------------------------------------------------------------------------------------
    def _open(self) -> Store:
        if self._store is None:
            try:
                self._store = open_readonly(self.target)
            except StoreError as exc:
                raise StateUnavailable(str(exc)) from exc
        return self._store

    def _query(self, fn: Callable[[Any], Any]) -> Any:
        # One long-lived read connection: opening SQLite (and parsing its schema) at 4 Hz costs more CPU than the
        # queries. Each batch ends with rollback(), so the next batch reads the newest committed WAL snapshot.
        with self._lock:
            store = self._open()
            try:
                if self._conn is None:
                    self._conn = store.engine.connect()
                try:
                    return fn(self._conn)
                finally:
                    self._conn.rollback()
            except Exception as exc:  # noqa: BLE001 - any DB failure becomes "state unavailable" for the UI
                self._drop_connection()
                raise StateUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                pass
            self._conn = None

    def close(self) -> None:
        """Close the read connection and release the pool."""
        with self._lock:
            self._drop_connection()
            if self._store is not None:
                self._store.dispose()
                self._store = None

    @staticmethod
    def _rows(conn: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]

    @staticmethod
    def _one(conn: Any, sql: str, **params: Any) -> dict[str, Any] | None:
        row = conn.execute(text(sql), params).mappings().first()
        return dict(row) if row is not None else None

    # --- status ----------------------------------------------------------------------------------------------------
    def status(self) -> StatusSnapshot:
        """Trading state, engine liveness and the portfolio numbers for the header."""
        return self._query(self._status_cached)

    def _unchanged(self, conn: Any, consumer: str) -> bool:
        """True when no other connection has committed since this consumer's last read (SQLite data_version)."""
        if conn.dialect.name != "sqlite":
            return False
        version = conn.exec_driver_sql("PRAGMA data_version").scalar()
        return not self._probe.changed(f"data_version:{consumer}", version)

    def _status_cached(self, conn: Any) -> StatusSnapshot:
        last = self._last_status
        if last is not None and self._unchanged(conn, "status"):
            now = self.clock()  # nothing was written: only liveness (heartbeat age) can have changed
            alive = (not last.engine_stopped and last.heartbeat_at is not None
                     and now - last.heartbeat_at <= self.heartbeat_timeout_ms)
            return dataclasses.replace(last, now=now, engine_alive=alive)
        if last is None:
            self._unchanged(conn, "status")  # record the version this full read corresponds to
        self._last_status = self._status(conn)
        return self._last_status

    def _status(self, conn: Any) -> StatusSnapshot:
        now = self.clock()
        ts = self._one(conn, "SELECT state, reason, changed_at, changed_by FROM trading_state WHERE scope='global'")
        eng = self._one(conn, "SELECT pid, mode, heartbeat_at, info FROM engine_status WHERE id = 1")
        last = self._one(conn, "SELECT ts, equity, gross_exposure, net_exposure FROM equity_snapshots "
                               "WHERE scope='portfolio' ORDER BY ts DESC LIMIT 1")
        day0 = now - now % DAY_MS
        first = self._one(conn, "SELECT equity FROM equity_snapshots WHERE scope='portfolio' AND ts >= :d "
                                "ORDER BY ts LIMIT 1", d=day0)
        seen_ts, peak = self._peak
        got = self._one(conn, "SELECT MAX(equity) AS peak, MAX(ts) AS ts FROM equity_snapshots "
                              "WHERE scope='portfolio' AND ts > :t", t=seen_ts)
        if got and got["ts"] is not None:
            self._peak = (int(got["ts"]), max(peak, float(got["peak"])))
        counts = self._one(conn, "SELECT (SELECT COUNT(*) FROM positions WHERE qty != 0) AS pos, "
                                 "(SELECT COUNT(*) FROM orders WHERE status IN ('new','open','partial')) AS ord, "
                                 "(SELECT COUNT(*) FROM alerts WHERE acked = 0) AS al, "
                                 "(SELECT COUNT(*) FROM commands WHERE status = 'pending' "
                                 "AND command IN ('halt','emergency_stop')) AS stops, "
                                 "(SELECT COUNT(*) FROM commands WHERE status = 'running' "
                                 "AND command IN ('flatten','emergency_stop')) AS flat") or {}
        equity = float(last["equity"]) if last else None
        peak_v = self._peak[1]
        heartbeat = int(eng["heartbeat_at"]) if eng else None
        stopped = bool(json.loads(eng["info"] or "{}").get("stopped", False)) if eng else False
        return StatusSnapshot(
            state=ts["state"] if ts else "ACTIVE", reason=ts["reason"] if ts else "initial",
            changed_at=int(ts["changed_at"]) if ts else 0, changed_by=ts["changed_by"] if ts else "engine",
            mode=eng["mode"] if eng else "?", engine_pid=int(eng["pid"]) if eng else None, heartbeat_at=heartbeat,
            engine_alive=not stopped and heartbeat is not None and now - heartbeat <= self.heartbeat_timeout_ms,
            engine_stopped=stopped,
            equity=equity, day_pnl=(equity - float(first["equity"])) if (equity is not None and first) else None,
            drawdown=(1.0 - equity / peak_v) if (equity is not None and peak_v > 0) else None,
            gross_exposure=float(last["gross_exposure"]) if last else None,
            net_exposure=float(last["net_exposure"]) if last else None,
            positions=int(counts.get("pos") or 0), open_orders=int(counts.get("ord") or 0),
            unacked_alerts=int(counts.get("al") or 0), now=now, pending_stops=int(counts.get("stops") or 0),
            flattening=int(counts.get("flat") or 0))

    # --- desk ------------------------------------------------------------------------------------------------------
    def desk(self, equity_points: int = 240, alert_rows: int = 6) -> DeskData:
        """Positions, open orders, the latest sizing per strategy and symbol, latest alerts and the equity curve."""
        return self._query(lambda conn: self._desk(conn, equity_points, alert_rows))

    def _desk(self, conn: Any, equity_points: int, alert_rows: int) -> DeskData:
        if self._unchanged(conn, "desk"):
            return DeskData(None, None, None, None, None)
        # Positions: re-read only when the rows or a mark moved (one C-side query gets every symbol's last close).
        pmark = self._one(conn, "SELECT COUNT(*) AS n, MAX(updated_at) AS u, TOTAL(qty) AS q, TOTAL(avg_price) AS a, "
                                "TOTAL(realized_pnl) AS r FROM positions WHERE qty != 0")
        marks = {r["symbol"]: float(r["close"]) for r in self._rows(
            conn, "SELECT c.symbol, c.close FROM candles c JOIN (SELECT DISTINCT symbol FROM positions "
                  "WHERE qty != 0) p ON p.symbol = c.symbol WHERE c.exchange = :e AND c.timeframe = :t AND c.ts = "
                  "(SELECT MAX(ts) FROM candles m WHERE m.exchange = c.exchange AND m.symbol = c.symbol "
                  "AND m.timeframe = c.timeframe)", e=self.exchange, t=self.timeframe)}
        positions = None
        if self._probe.changed("positions", (tuple(pmark.values()) if pmark else None, tuple(sorted(marks.items())))):
            positions = []
            for inst, sym, qty, avg, realized in conn.execute(text(
                    "SELECT instance_id, symbol, qty, avg_price, realized_pnl FROM positions WHERE qty != 0 "
                    "ORDER BY instance_id, symbol")).all():
                mark = marks.get(sym)
                positions.append((inst, sym, qty, avg, realized, mark,
                                  (mark - avg) * qty if mark is not None else None))
        # Open orders: the engine stamps updated_at on every change; fills and cancels also move the totals.
        omark = self._one(conn, "SELECT COUNT(*) AS n, MAX(updated_at) AS u, MAX(id) AS i, TOTAL(filled_qty) AS f, "
                                "TOTAL(id * (status = 'partial')) AS p FROM orders "
                                "WHERE status IN ('new','open','partial')")
        orders = None
        if self._probe.changed("orders", tuple(omark.values()) if omark else None):
            orders = [tuple(r) for r in conn.execute(text(
                "SELECT client_order_id, created_at, instance_id, symbol, side, type, qty, price, filled_qty, "
                "reduce_only, status FROM orders WHERE status IN ('new','open','partial') ORDER BY id")).all()]
        marker = self._one(conn, "SELECT MAX(id) AS m FROM sizing_decisions")
        sizing = None
        if self._probe.changed("sizing", marker and marker["m"]):
            sizing = self._rows(conn, "SELECT s.instance_id, s.symbol, s.side, s.meta_prob, s.kelly_fraction, "
                                      "s.cap_applied, s.raw_size, s.final_size, s.vpin_cdf, s.spread_bps, s.depth, "
                                      "s.ts FROM sizing_decisions s JOIN (SELECT MAX(id) AS id FROM "
                                      "sizing_decisions GROUP BY instance_id, symbol) m ON s.id = m.id "
                                      "ORDER BY s.instance_id, s.symbol")
        amark = self._one(conn, "SELECT MAX(id) AS m, SUM(acked) AS a FROM alerts")
        alerts = None
        if self._probe.changed("desk_alerts", amark and (amark["m"], amark["a"])):
            alerts = self._rows(conn, "SELECT id, ts, severity, rule, source, message, acked FROM alerts "
                                      "ORDER BY id DESC LIMIT :n", n=alert_rows)
        emark = self._one(conn, "SELECT MAX(ts) AS m FROM equity_snapshots WHERE scope='portfolio'")
        equity = None
        if self._probe.changed("equity", emark and emark["m"]):
            rows = self._rows(conn, "SELECT ts, equity FROM equity_snapshots WHERE scope='portfolio' "
                                    "ORDER BY ts DESC LIMIT :n", n=equity_points)
            equity = [(int(r["ts"]), float(r["equity"])) for r in reversed(rows)]
        return DeskData(positions, orders, sizing, alerts, equity)

    # --- strategies ------------------------------------------------------------------------------------------------
    def strategies(self) -> list[dict[str, Any]]:
        """The leaderboard: each instance with stage, status, equity, return, drawdown, fills and twin drift."""
        return self._query(self._strategies)

    def _strategies(self, conn: Any) -> list[dict[str, Any]]:
        inst = self._rows(conn, "SELECT id, strategy, stage, status, capital, symbols, timeframe, stage_changed_at "
                                "FROM strategy_instances ORDER BY id")
        out = []
        for r in inst:
            eq = self._one(conn, "SELECT equity FROM equity_snapshots WHERE scope=:s ORDER BY ts DESC LIMIT 1", s=r["id"])
            peak = self._one(conn, "SELECT MAX(equity) AS p FROM equity_snapshots WHERE scope=:s", s=r["id"])
            fills = self._one(conn, "SELECT COUNT(*) AS n FROM fills WHERE instance_id=:s", s=r["id"])
            drift = self._one(conn, "SELECT COUNT(*) AS n, AVG(drift_bps) AS mean, AVG(ABS(drift_bps)) AS mabs "
                                    "FROM twin_trades WHERE instance_id=:s", s=r["id"])
            equity = float(eq["equity"]) if eq else None
            p = float(peak["p"]) if peak and peak["p"] is not None else None
            capital = float(r["capital"]) or 1.0
            out.append({**r, "equity": equity,
                        "ret": (equity / capital - 1.0) if equity is not None else None,
                        "drawdown": (1.0 - equity / p) if (equity is not None and p) else None,
                        "fills": int(fills["n"]) if fills else 0,
                        "drift_n": int(drift["n"]) if drift else 0,
                        "drift_mean": drift["mean"] if drift else None,
                        "drift_abs": drift["mabs"] if drift else None})
        out.sort(key=lambda x: (x["ret"] is None, -(x["ret"] or 0.0)))
        return out

    # --- research --------------------------------------------------------------------------------------------------
    def backtest_runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Backtest and walk-forward runs, newest first, with Sharpe, DSR, trial count and report path."""
        return self._query(lambda c: self._rows(
            c, "SELECT r.id, r.created_at, r.kind, r.strategy, r.timeframe, r.symbols, r.sharpe, r.dsr, r.n_trials, "
               "r.lookahead_ok, r.report_path, r.dataset_hash, (SELECT COUNT(*) FROM trials t WHERE t.run_id = r.id) "
               "AS trial_rows FROM backtest_runs r ORDER BY r.id DESC LIMIT :n", n=limit))

    def trials(self, run_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Trials of one run (or of its dataset when the run has none linked), best Sharpe first."""
        def q(conn: Any) -> list[dict[str, Any]]:
            rows = self._rows(conn, "SELECT id, strategy, phase, window, sharpe, n_obs, skew, kurtosis, params "
                                    "FROM trials WHERE run_id=:r ORDER BY sharpe DESC LIMIT :n", r=run_id, n=limit)
            if rows:
                return rows
            return self._rows(conn, "SELECT t.id, t.strategy, t.phase, t.window, t.sharpe, t.n_obs, t.skew, "
                                    "t.kurtosis, t.params FROM trials t JOIN backtest_runs r ON "
                                    "r.dataset_hash = t.dataset_hash AND r.strategy = t.strategy WHERE r.id=:r "
                                    "ORDER BY t.sharpe DESC LIMIT :n", r=run_id, n=limit)
        return self._query(q)

    # --- models ----------------------------------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """The model registry: every version per strategy with role, scores and hash."""
        rows = self._query(lambda c: self._rows(
            c, "SELECT id, created_at, strategy, version, role, oos_score, cv_scores, sha256, estimator, "
               "train_end, promoted_at, path FROM models ORDER BY strategy, version DESC"))
        for r in rows:
            try:
                scores = json.loads(r["cv_scores"] or "[]")
                vals = [float(v) for v in (scores.values() if isinstance(scores, dict) else scores)]
                r["cv_mean"] = sum(vals) / len(vals) if vals else None
            except (ValueError, TypeError):
                r["cv_mean"] = None
        return rows

    # --- jobs ------------------------------------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        """APScheduler jobs (from its job store in state.db) merged with their last run, result and errors."""
        return self._query(self._jobs)

    def _jobs(self, conn: Any) -> list[dict[str, Any]]:
        tables = []
        if conn.dialect.name == "sqlite":
            tables = [r["name"] for r in self._rows(conn, "SELECT name FROM sqlite_master WHERE type='table' "
                                                          "AND name LIKE '%apscheduler%'")]
        jobs: dict[str, dict[str, Any]] = {}
        for table in tables:
            for r in self._rows(conn, f'SELECT id, next_run_time, job_state FROM "{table}"'):
                jobs[r["id"]] = {"job_id": r["id"], "next_run": r["next_run_time"], "trigger": _trigger_text(r["job_state"])}
        runs = self._rows(conn, "SELECT j.job_id, j.started_at, j.finished_at, j.ok, j.result, j.error, "
                                "(SELECT COUNT(*) FROM job_runs e WHERE e.job_id = j.job_id AND e.ok = 0) AS errors, "
                                "(SELECT COUNT(*) FROM job_runs e WHERE e.job_id = j.job_id) AS runs "
                                "FROM job_runs j JOIN (SELECT MAX(id) AS id FROM job_runs GROUP BY job_id) m "
                                "ON j.id = m.id")
        for r in runs:
            jobs.setdefault(r["job_id"], {"job_id": r["job_id"], "next_run": None, "trigger": ""}).update(r)
        return [jobs[k] for k in sorted(jobs)]

    # --- data ------------------------------------------------------------------------------------------------------
    def coverage(self) -> list[dict[str, Any]]:
        """Per candle series: first/last bar, bar count, freshness, gap bars and quarantined rows."""
        def q(conn: Any) -> list[dict[str, Any]]:
            series = self._rows(conn, "SELECT exchange, symbol, timeframe, MIN(ts) AS first, MAX(ts) AS last, "
                                      "COUNT(*) AS bars FROM candles GROUP BY exchange, symbol, timeframe")
            quarantined = {r["series"]: r for r in self._rows(
                conn, "SELECT series, COUNT(*) AS n, MAX(reason) AS reason FROM quarantine GROUP BY series")}
            return series, quarantined
        series, quarantined = self._query(q)
        now = self.clock()
        out = []
        for s in series:
            key = f"{s['exchange']}:{s['symbol']}:{s['timeframe']}"
            try:
                step = timeframe_ms(s["timeframe"])
                expected = (s["last"] - s["first"]) // step + 1
            except ValueError:
                step, expected = 0, s["bars"]
            qrow = quarantined.pop(key, None)
            out.append({"series": key, **s, "gaps": max(0, int(expected) - int(s["bars"])),
                        "age_ms": now - int(s["last"]) - step, "quarantined": qrow["n"] if qrow else 0,
                        "q_reason": qrow["reason"] if qrow else ""})
        for key, qrow in quarantined.items():  # quarantine for series with no stored bars (feeds, trades, books)
            out.append({"series": key, "exchange": "", "symbol": "", "timeframe": "", "first": None, "last": None,
                        "bars": 0, "gaps": 0, "age_ms": None, "quarantined": qrow["n"], "q_reason": qrow["reason"]})
        return out

    # --- alerts and audit ------------------------------------------------------------------------------------------
    def alerts(self, severities: Sequence[str] = ("info", "warning", "critical"), unacked_only: bool = False,
               limit: int = 300) -> list[dict[str, Any]]:
        """Alerts newest first, filtered by severity and acknowledgement."""
        sev = tuple(severities) or ("none",)
        marks = ",".join(f":s{i}" for i in range(len(sev)))
        params = {f"s{i}": s for i, s in enumerate(sev)}
        where = f"severity IN ({marks})" + (" AND acked = 0" if unacked_only else "")
        return self._query(lambda c: self._rows(
            c, f"SELECT id, ts, severity, rule, source, message, acked, acked_by FROM alerts WHERE {where} "
               "ORDER BY id DESC LIMIT :n", n=limit, **params))

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        """The audit log, newest first."""
        return self._query(lambda c: self._rows(
            c, "SELECT id, ts, source, user, action, details FROM audit_log ORDER BY id DESC LIMIT :n", n=limit))


def _trigger_text(blob: Any) -> str:
    """Describe an APScheduler job's trigger from its pickled state (empty when it cannot be read)."""
    if not blob:
        return ""
    try:
        state = pickle.loads(blob)  # noqa: S301 - our own engine's job store in our own state.db
    except Exception:  # noqa: BLE001 - a job class we cannot import still shows id and next run
        return ""
    trigger = state.get("trigger") if isinstance(state, dict) else None
    return str(trigger) if trigger is not None else ""
