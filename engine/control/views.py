"""The read model: every number a front end shows, computed once here over a read-only connection to state.db.

`quantdesk status`, the console header and every console table call these plain functions, so they cannot drift
apart (the day boundary from market time, one liveness check, one open-position and open-order predicate). Each
function takes an open SQLAlchemy connection and returns frozen dataclasses or plain rows; the console's caching
(engine/control/reader.py) only decides *when* to call them, using the cheap `*_marker` probes below.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from engine.clock import now_ms, timeframe_ms
from engine.control.equity_view import DAY_MS, PeakTracker, day_open_equity, desk_equity  # noqa: F401 - re-exported
from engine.control.liveness import engine_alive, pid_running, with_liveness
from engine.control.snapshots import DeskData, StateUnavailable, StatusSnapshot
from engine.execution.orders import OPEN_STATUSES, OrderStatus

__all__ = ["DAY_MS", "DeskData", "DeskPart", "DESK_PARTS", "PeakTracker", "StateUnavailable", "StatusSnapshot",
           "alerts_view", "audit_view", "backtest_runs_view", "coverage_view", "desk_view", "engine_alive",
           "jobs_view", "leaderboard_view", "models_view", "pid_running", "status_view", "trials_view",
           "with_liveness"]

OPEN_ORDERS_SQL = "status IN (" + ",".join(f"'{s}'" for s in OPEN_STATUSES) + ")"  # one predicate everywhere
OPEN_POSITIONS_SQL = "ABS(qty) > 1e-12"  # a position below this is dust left by float sums, not exposure
STOP_COMMANDS_SQL = "command IN ('halt','emergency_stop')"
FLATTENING_SQL = "command IN ('flatten','emergency_stop')"


def _json_obj(text: Any) -> dict:
    """A JSON-object column as a dict ({} when empty, malformed or not an object)."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _rows(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]


def _one(conn: Connection, sql: str, **params: Any) -> dict[str, Any] | None:
    row = conn.execute(text(sql), params).mappings().first()
    return dict(row) if row is not None else None


# --- status -------------------------------------------------------------------------------------------------------
def status_view(conn: Connection, now: int | None = None, heartbeat_timeout_ms: int = 5_000,
                peak: PeakTracker | None = None) -> StatusSnapshot:
    """Trading state, engine liveness, equity, day P&L (market day), drawdown, exposure and counts.

    The day is the market day of the newest portfolio snapshot (snapshots carry the source's clock, simulated time
    for the simulator), never the reader's wall clock. `peak` lets a polling reader scan only new snapshots."""
    now = now_ms() if now is None else now
    ts = _one(conn, "SELECT state, reason, changed_at, changed_by FROM trading_state WHERE scope='global'")
    eng = _one(conn, "SELECT pid, host, mode, started_at, heartbeat_at, info FROM engine_status ORDER BY id LIMIT 1")
    desk = desk_equity(conn, peak)  # the sum over the desk's engines (engine/control/equity_view.py)
    counts = _one(conn, f"SELECT (SELECT COUNT(*) FROM positions WHERE {OPEN_POSITIONS_SQL}) AS pos, "
                        f"(SELECT COUNT(*) FROM orders WHERE {OPEN_ORDERS_SQL}) AS ord, "
                        "(SELECT COUNT(*) FROM alerts WHERE acked = 0) AS al, "
                        f"(SELECT COUNT(*) FROM commands WHERE status = 'pending' AND {STOP_COMMANDS_SQL}) AS stops, "
                        f"(SELECT COUNT(*) FROM commands WHERE status = 'running' AND {FLATTENING_SQL}) AS flat") or {}
    equity = desk.equity if desk else None
    heartbeat = int(eng["heartbeat_at"]) if eng else None
    stopped = bool(json.loads(eng["info"] or "{}").get("stopped", False)) if eng else False
    pid = int(eng["pid"]) if eng else None
    host = str(eng["host"]) if eng else None
    return StatusSnapshot(
        state=ts["state"] if ts else "ACTIVE", reason=ts["reason"] if ts else "initial",
        changed_at=int(ts["changed_at"]) if ts else 0, changed_by=ts["changed_by"] if ts else "engine",
        mode=eng["mode"] if eng else "unknown", engine_pid=pid, heartbeat_at=heartbeat,
        engine_alive=engine_alive(pid, host, heartbeat, stopped, now, heartbeat_timeout_ms),
        engine_stopped=stopped, engine_host=host, started_at=int(eng["started_at"]) if eng else None,
        equity=equity, day_pnl=desk.day_pnl if desk else None, drawdown=desk.drawdown if desk else None,
        gross_exposure=desk.gross_exposure if desk else None, net_exposure=desk.net_exposure if desk else None,
        positions=int(counts.get("pos") or 0), open_orders=int(counts.get("ord") or 0),
        unacked_alerts=int(counts.get("al") or 0), now=now, pending_stops=int(counts.get("stops") or 0),
        flattening=int(counts.get("flat") or 0), engines=_engines(conn, now, heartbeat_timeout_ms))


def _engines(conn: Connection, now: int, heartbeat_timeout_ms: int) -> tuple[tuple[str, bool, str], ...]:
    """(name, alive, own state) of every engine of the desk, main first (one engine_status row per engine)."""
    own = {r["scope"][len("engine:"):]: str(r["state"]) for r in _rows(
        conn, "SELECT scope, state FROM trading_state WHERE scope LIKE 'engine:%'")}
    out = []
    for r in _rows(conn, "SELECT name, pid, host, heartbeat_at, info FROM engine_status ORDER BY id"):
        name = str(r["name"] or "main")
        stopped = bool(json.loads(r["info"] or "{}").get("stopped", False))
        out.append((name, engine_alive(int(r["pid"]), r["host"], int(r["heartbeat_at"]), stopped, now,
                                       heartbeat_timeout_ms), own.get(name, "ACTIVE")))
    return tuple(out)


# --- desk ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeskQuery:
    """What a desk read is about: the candle series that marks positions, and how many rows to show."""

    exchange: str = "sim"
    timeframe: str = "1m"
    equity_points: int = 240
    alert_rows: int = 6


def _marks(conn: Connection, q: DeskQuery) -> dict[str, float]:
    """The last close of every symbol with an open position (one query)."""
    return {r["symbol"]: float(r["close"]) for r in _rows(
        conn, "SELECT c.symbol, c.close FROM candles c JOIN (SELECT DISTINCT symbol FROM positions "
              f"WHERE {OPEN_POSITIONS_SQL}) p ON p.symbol = c.symbol WHERE c.exchange = :e AND c.timeframe = :t "
              "AND c.ts = (SELECT MAX(ts) FROM candles m WHERE m.exchange = c.exchange AND m.symbol = c.symbol "
              "AND m.timeframe = c.timeframe)", e=q.exchange, t=q.timeframe)}


def _positions_marker(conn: Connection, q: DeskQuery) -> Hashable:
    pmark = _one(conn, "SELECT COUNT(*) AS n, MAX(updated_at) AS u, TOTAL(qty) AS q, TOTAL(avg_price) AS a, "
                       f"TOTAL(realized_pnl) AS r FROM positions WHERE {OPEN_POSITIONS_SQL}")
    return (tuple(pmark.values()) if pmark else None, tuple(sorted(_marks(conn, q).items())))


def _positions(conn: Connection, q: DeskQuery, marker: Any) -> list[tuple[Any, ...]]:
    """(instance_id, symbol, qty, avg_price, realized_pnl, mark, unrealized) per open position."""
    marks = dict(marker[1])
    out = []
    for inst, sym, qty, avg, realized in conn.execute(text(
            f"SELECT instance_id, symbol, qty, avg_price, realized_pnl FROM positions WHERE {OPEN_POSITIONS_SQL} "
            "ORDER BY instance_id, symbol")).all():
        mark = marks.get(sym)
        out.append((inst, sym, qty, avg, realized, mark, (mark - avg) * qty if mark is not None else None))
    return out


def _orders_marker(conn: Connection, q: DeskQuery) -> Hashable:
    # the engine stamps updated_at on every change; fills and cancels also move the totals
    omark = _one(conn, "SELECT COUNT(*) AS n, MAX(updated_at) AS u, MAX(id) AS i, TOTAL(filled_qty) AS f, "
                       f"TOTAL(id * (status = '{OrderStatus.PARTIAL.value}')) AS p FROM orders WHERE {OPEN_ORDERS_SQL}")
    return tuple(omark.values()) if omark else None


def _orders(conn: Connection, q: DeskQuery, marker: Any) -> list[tuple[Any, ...]]:
    """Open orders, oldest first, as plain tuples (see DeskData)."""
    return [tuple(r) for r in conn.execute(text(
        "SELECT client_order_id, created_at, instance_id, symbol, side, type, qty, price, filled_qty, "
        f"reduce_only, status FROM orders WHERE {OPEN_ORDERS_SQL} ORDER BY id")).all()]


def _sizing_marker(conn: Connection, q: DeskQuery) -> Hashable:
    row = _one(conn, "SELECT MAX(id) AS m FROM sizing_decisions")
    return row and row["m"]


def _sizing(conn: Connection, q: DeskQuery, marker: Any) -> list[dict[str, Any]]:
    """The latest sizing decision per instance and symbol."""
    return _rows(conn, "SELECT s.instance_id, s.symbol, s.side, s.meta_prob, s.kelly_fraction, s.cap_applied, "
                       "s.raw_size, s.final_size, s.vpin_cdf, s.spread_bps, s.depth, s.ts FROM sizing_decisions s "
                       "JOIN (SELECT MAX(id) AS id FROM sizing_decisions GROUP BY instance_id, symbol) m "
                       "ON s.id = m.id ORDER BY s.instance_id, s.symbol")


def _alerts_marker(conn: Connection, q: DeskQuery) -> Hashable:
    row = _one(conn, "SELECT MAX(id) AS m, SUM(acked) AS a, SUM(count) AS c FROM alerts")
    return row and (row["m"], row["a"], row["c"])


# Identical alerts are merged into one row by raise_alert (its `count` and `last_ts`): `repeats` is that count, `ts` the
# last time it was raised and `first_ts` the first. Newest first means most recently raised first.
_ALERT_COLUMNS = ("id, COALESCE(last_ts, ts) AS ts, ts AS first_ts, count AS repeats, severity, rule, source, message, "
                  "acked, acked_by, values_json")
_ALERT_ORDER = "ORDER BY COALESCE(last_ts, ts) DESC, id DESC"


def _latest_alerts(conn: Connection, q: DeskQuery, marker: Any) -> list[dict[str, Any]]:
    """The most recently raised alerts, newest first, with their repeat counts."""
    return _rows(conn, f"SELECT {_ALERT_COLUMNS} FROM alerts {_ALERT_ORDER} LIMIT :n", n=q.alert_rows)


def _equity_marker(conn: Connection, q: DeskQuery) -> Hashable:
    row = _one(conn, "SELECT MAX(ts) AS m FROM equity_snapshots WHERE scope='portfolio'")
    return row and row["m"]


def _equity(conn: Connection, q: DeskQuery, marker: Any) -> list[tuple[int, float]]:
    """The last `equity_points` portfolio equity points, oldest first."""
    rows = _rows(conn, "SELECT ts, equity FROM equity_snapshots WHERE scope='portfolio' ORDER BY ts DESC LIMIT :n",
                 n=q.equity_points)
    return [(int(r["ts"]), float(r["equity"])) for r in reversed(rows)]


@dataclass(frozen=True)
class DeskPart:
    """One desk table: a cheap change marker and the read it guards."""

    name: str
    marker: Callable[[Connection, DeskQuery], Hashable]
    read: Callable[[Connection, DeskQuery, Any], Any]


DESK_PARTS = (DeskPart("positions", _positions_marker, _positions), DeskPart("orders", _orders_marker, _orders),
              DeskPart("sizing", _sizing_marker, _sizing), DeskPart("alerts", _alerts_marker, _latest_alerts),
              DeskPart("equity", _equity_marker, _equity))


def desk_view(conn: Connection, q: DeskQuery = DeskQuery(),
              changed: Callable[[str, Hashable], bool] | None = None) -> DeskData:
    """Positions, open orders, latest sizing, latest alerts and the equity curve (a part is None when unchanged)."""
    parts = {}
    for part in DESK_PARTS:
        marker = part.marker(conn, q)
        parts[part.name] = part.read(conn, q, marker) if changed is None or changed(part.name, marker) else None
    return DeskData(**parts)


# --- tables -------------------------------------------------------------------------------------------------------
def leaderboard_view(conn: Connection) -> list[dict[str, Any]]:
    """Each instance with stage, status, lineage (role, parent, origin walk-forward run), equity, return, drawdown,
    fills, twin drift and the engine's DSR ranking."""
    info = _one(conn, "SELECT info FROM engine_status WHERE id = 1")
    ranked = {r.get("instance_id"): r for r in json.loads((info or {}).get("info") or "{}").get("leaderboard", [])}
    out = []
    for r in _rows(conn, "SELECT id, strategy, stage, status, capital, symbols, timeframe, stage_changed_at, role, "
                         "parent_id, origin_run_id FROM strategy_instances ORDER BY id"):
        agg = _one(conn, "SELECT (SELECT equity FROM equity_snapshots WHERE scope=:s ORDER BY ts DESC LIMIT 1) AS eq, "
                         "(SELECT MAX(equity) FROM equity_snapshots WHERE scope=:s) AS peak, "
                         "(SELECT COUNT(*) FROM fills WHERE instance_id=:s) AS fills, "
                         "(SELECT COUNT(*) FROM twin_trades WHERE instance_id=:s) AS dn, "
                         "(SELECT AVG(drift_bps) FROM twin_trades WHERE instance_id=:s) AS dmean, "
                         "(SELECT AVG(ABS(drift_bps)) FROM twin_trades WHERE instance_id=:s) AS dabs", s=r["id"]) or {}
        equity = float(agg["eq"]) if agg.get("eq") is not None else None
        p = float(agg["peak"]) if agg.get("peak") is not None else None
        capital = float(r["capital"]) or 1.0
        rank = ranked.get(r["id"], {})
        out.append({**r, "equity": equity, "ret": (equity / capital - 1.0) if equity is not None else None,
                    "drawdown": (1.0 - equity / p) if (equity is not None and p) else None,
                    "fills": int(agg.get("fills") or 0), "drift_n": int(agg.get("dn") or 0),
                    "drift_mean": agg.get("dmean"), "drift_abs": agg.get("dabs"),
                    "dsr": rank.get("dsr"), "n_trials": rank.get("n_trials"), "rank": rank.get("rank")})
    out.sort(key=lambda x: (x["ret"] is None, -(x["ret"] or 0.0)))
    return out


def backtest_runs_view(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Backtest and walk-forward runs, newest first, with Sharpe, DSR, PBO (walk-forward, any search), trial count,
    search and report path."""
    rows = _rows(conn, "SELECT r.id, r.created_at, r.kind, r.strategy, r.timeframe, r.symbols, r.sharpe, r.dsr, "
                       "r.n_trials, r.lookahead_ok, r.report_path, r.dataset_hash, r.metrics, r.params, "
                       "(SELECT COUNT(*) FROM trials t WHERE t.run_id = r.id) AS trial_rows FROM backtest_runs r "
                       "ORDER BY r.id DESC LIMIT :n", n=limit)
    for r in rows:  # PBO and search live in the run's JSON (a walk-forward of any search has a PBO)
        pbo = _json_obj(r.pop("metrics")).get("pbo")
        r["pbo"] = float(pbo) if isinstance(pbo, (int, float)) and math.isfinite(pbo) else None
        r["search"] = _json_obj(r.pop("params")).get("search")
    return rows


def trials_view(conn: Connection, run_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Trials of one run (or of its dataset when the run has none linked), best Sharpe first."""
    rows = _rows(conn, "SELECT id, strategy, phase, \"window\", sharpe, n_obs, skew, kurtosis, params FROM trials "
                       "WHERE run_id=:r ORDER BY sharpe DESC LIMIT :n", r=run_id, n=limit)
    return rows or _rows(conn, "SELECT t.id, t.strategy, t.phase, t.\"window\", t.sharpe, t.n_obs, t.skew, t.kurtosis, "
                               "t.params FROM trials t JOIN backtest_runs r ON r.dataset_hash = t.dataset_hash "
                               "AND r.strategy = t.strategy WHERE r.id=:r ORDER BY t.sharpe DESC LIMIT :n",
                         r=run_id, n=limit)


def models_view(conn: Connection) -> list[dict[str, Any]]:
    """The model registry: every version per strategy with role, scores (and their mean) and hash."""
    rows = _rows(conn, "SELECT id, created_at, strategy, version, role, oos_score, cv_scores, sha256, estimator, "
                       "train_end, promoted_at, path FROM models ORDER BY strategy, version DESC")
    for r in rows:
        try:
            scores = json.loads(r["cv_scores"] or "[]")
            vals = [float(v) for v in (scores.values() if isinstance(scores, dict) else scores)]
            r["cv_mean"] = sum(vals) / len(vals) if vals else None
        except (ValueError, TypeError):
            r["cv_mean"] = None
    return rows


def jobs_view(conn: Connection) -> list[dict[str, Any]]:
    """APScheduler jobs (from its job store in state.db) merged with their last run, result and error counts."""
    tables = []
    if conn.dialect.name == "sqlite":
        tables = [r["name"] for r in _rows(conn, "SELECT name FROM sqlite_master WHERE type='table' "
                                                 "AND name LIKE '%apscheduler%'")]
    jobs: dict[str, dict[str, Any]] = {}
    for table in tables:
        for r in _rows(conn, f'SELECT id, next_run_time, job_state FROM "{table}"'):
            jobs[r["id"]] = {"job_id": r["id"], "next_run": r["next_run_time"],
                             "trigger": _trigger_text(r["job_state"])}
    for r in _rows(conn, "SELECT j.job_id, j.started_at, j.finished_at, j.ok, j.result, j.error, "
                         "(SELECT COUNT(*) FROM job_runs e WHERE e.job_id = j.job_id AND e.ok = 0) AS errors, "
                         "(SELECT COUNT(*) FROM job_runs e WHERE e.job_id = j.job_id) AS runs "
                         "FROM job_runs j JOIN (SELECT MAX(id) AS id FROM job_runs GROUP BY job_id) m ON j.id = m.id"):
        jobs.setdefault(r["job_id"], {"job_id": r["job_id"], "next_run": None, "trigger": ""}).update(r)
    return [jobs[k] for k in sorted(jobs)]


def coverage_view(conn: Connection, now: int | None = None) -> list[dict[str, Any]]:
    """Per candle series: first/last bar, bar count, freshness, gap bars and quarantined rows."""
    now = now_ms() if now is None else now
    series = _rows(conn, "SELECT exchange, symbol, timeframe, MIN(ts) AS first, MAX(ts) AS last, COUNT(*) AS bars "
                         "FROM candles GROUP BY exchange, symbol, timeframe")
    quarantined = {r["series"]: r for r in _rows(
        conn, "SELECT series, COUNT(*) AS n, MAX(reason) AS reason FROM quarantine GROUP BY series")}
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


def streams_view(conn: Connection, now: int | None = None) -> list[dict[str, Any]]:
    """The engine's websocket streams as it last published them (engine_status info.streams), ages taken to `now`."""
    now = now_ms() if now is None else now
    row = _one(conn, "SELECT info FROM engine_status WHERE id = 1")
    info = json.loads(row["info"] or "{}") if row else {}
    published = int(info.get("streams_at") or now)
    out = []
    for st in info.get("streams") or []:
        age = st.get("last_message_age_s")
        out.append({**st, "last_message_age_s": None if age is None else age + max(0, now - published) / 1000,
                    "published_ms": published, "engine_stopped": bool(info.get("stopped"))})
    return out


def alerts_view(conn: Connection, severities: Sequence[str] = ("info", "warning", "critical"),
                unacked_only: bool = False, limit: int = 300) -> list[dict[str, Any]]:
    """Alerts most recently raised first, filtered by severity and acknowledgement, with their repeat counts."""
    sev = tuple(severities) or ("none",)
    params: Mapping[str, Any] = {f"s{i}": s for i, s in enumerate(sev)}
    where = f"severity IN ({','.join(':' + k for k in params)})" + (" AND acked = 0" if unacked_only else "")
    return _rows(conn, f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} {_ALERT_ORDER} LIMIT :n", n=limit,
                 **params)


def outbox_view(conn: Connection) -> list[dict[str, Any]]:
    """Off-box delivery per channel: its redacted URL and how many messages are sent, pending, held or failed."""
    rows = _rows(conn, "SELECT channel, status, COUNT(*) AS n, MAX(channel_url) AS url FROM alert_outbox "
                       "GROUP BY channel, status ORDER BY channel")
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        ch = out.setdefault(int(r["channel"]), {"channel": int(r["channel"]), "url": r["url"], "sent": 0,
                                                "pending": 0, "held": 0, "failed": 0})
        key = {"sending": "pending", "digested": "held"}.get(r["status"], r["status"])
        if key in ch:
            ch[key] += int(r["n"])
    return list(out.values())


def audit_view(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The audit log, newest first."""
    return _rows(conn, "SELECT id, ts, source, \"user\", action, details FROM audit_log ORDER BY id DESC LIMIT :n",
                 n=limit)


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
