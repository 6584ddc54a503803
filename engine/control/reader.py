"""A polling front end's view of one state.db: the read model (engine/control/views.py) plus change detection.

No SQL and no arithmetic live here: this class only keeps one long-lived read connection, skips reads when SQLite
says nothing was committed (`PRAGMA data_version`) or a table's change marker did not move, and turns any database
failure into `StateUnavailable`. Every number comes from the same view functions `quantdesk status` uses.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.control import views
from engine.control.snapshots import DeskData, StateUnavailable, StatusSnapshot
from engine.store.health import describe, is_database_error
from engine.store import Store, StoreError, open_readonly

__all__ = ["DeskData", "StateReader", "StateUnavailable", "StatusSnapshot"]


@dataclass
class _Probe:
    """Last seen change markers, so unchanged data is not re-read."""

    values: dict[str, Any] = field(default_factory=dict)

    def changed(self, key: str, marker: Hashable) -> bool:
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
        self.desk_query = views.DeskQuery(exchange=exchange, timeframe=timeframe)
        self.heartbeat_timeout_ms = int(heartbeat_timeout_s * 1000)
        self._store: Store | None = None
        self._conn: Connection | None = None
        self._last_status: StatusSnapshot | None = None
        self._lock = threading.Lock()
        self._probe = _Probe()
        self._peak = views.PeakTracker()

    # --- plumbing --------------------------------------------------------------------------------------------------
    def _query(self, fn: Callable[[Connection], Any]) -> Any:
        # One long-lived read connection: opening SQLite (and parsing its schema) at 4 Hz costs more CPU than the
        # queries. Each batch ends with rollback(), so the next batch reads the newest committed WAL snapshot.
        with self._lock:
            try:
                if self._store is None:
                    self._store = open_readonly(self.target)
                if self._conn is None:
                    self._conn = self._store.engine.connect()
                try:
                    return fn(self._conn)
                finally:
                    self._conn.rollback()
            except StoreError as exc:
                raise StateUnavailable(str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - any DB failure becomes "state unavailable" for the UI
                self._drop_connection()
                if is_database_error(exc):  # one line: the store, the cause in words and `quantdesk doctor`
                    raise StateUnavailable(describe(self.target, exc)) from exc
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

    def _unchanged(self, conn: Connection, consumer: str) -> bool:
        """True when no other connection has committed since this consumer's last read (SQLite data_version)."""
        if conn.dialect.name != "sqlite":
            return False
        version = conn.exec_driver_sql("PRAGMA data_version").scalar()
        return not self._probe.changed(f"data_version:{consumer}", version)

    # --- status and desk -------------------------------------------------------------------------------------------
    def status(self) -> StatusSnapshot:
        """Trading state, engine liveness and the portfolio numbers for the header (views.status_view)."""
        return self._query(self._status)

    def _status(self, conn: Connection) -> StatusSnapshot:
        last = self._last_status
        if last is not None and self._unchanged(conn, "status"):
            return views.with_liveness(last, self.clock(), self.heartbeat_timeout_ms)  # only liveness can move
        if last is None:
            self._unchanged(conn, "status")  # record the version this full read corresponds to
        self._last_status = views.status_view(conn, self.clock(), self.heartbeat_timeout_ms, self._peak)
        return self._last_status

    def desk(self, equity_points: int = 240, alert_rows: int = 6) -> DeskData:
        """Positions, open orders, latest sizing, latest alerts and the equity curve; None parts are unchanged."""
        q = views.DeskQuery(self.desk_query.exchange, self.desk_query.timeframe, equity_points, alert_rows)

        def read(conn: Connection) -> DeskData:
            if self._unchanged(conn, "desk"):
                return DeskData(None, None, None, None, None)
            return views.desk_view(conn, q, lambda name, marker: self._probe.changed(f"desk:{name}", marker))
        return self._query(read)

    # --- tables ----------------------------------------------------------------------------------------------------
    def strategies(self) -> list[dict[str, Any]]:
        """The leaderboard rows (views.leaderboard_view)."""
        return self._query(views.leaderboard_view)

    def backtest_runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Backtest and walk-forward runs, newest first (views.backtest_runs_view)."""
        return self._query(lambda c: views.backtest_runs_view(c, limit))

    def trials(self, run_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Trials of one run, best Sharpe first (views.trials_view)."""
        return self._query(lambda c: views.trials_view(c, run_id, limit))

    def models(self) -> list[dict[str, Any]]:
        """The model registry (views.models_view)."""
        return self._query(views.models_view)

    def jobs(self) -> list[dict[str, Any]]:
        """Scheduler jobs with their last run (views.jobs_view)."""
        return self._query(views.jobs_view)

    def coverage(self) -> list[dict[str, Any]]:
        """Data coverage per series (views.coverage_view)."""
        return self._query(lambda c: views.coverage_view(c, self.clock()))

    def streams(self) -> list[dict[str, Any]]:
        """The engine's websocket market-data streams (views.streams_view)."""
        return self._query(lambda c: views.streams_view(c, self.clock()))

    def alerts(self, severities: Sequence[str] = ("info", "warning", "critical"), unacked_only: bool = False,
               limit: int = 300) -> list[dict[str, Any]]:
        """Alerts newest first (views.alerts_view)."""
        return self._query(lambda c: views.alerts_view(c, severities, unacked_only, limit))

    def outbox(self) -> list[dict[str, Any]]:
        """Off-box alert delivery per channel (views.outbox_view)."""
        return self._query(views.outbox_view)

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        """The audit log, newest first (views.audit_view)."""
        return self._query(lambda c: views.audit_view(c, limit))
