"""APScheduler's SQLAlchemy job store, made to survive a lost database session.

APScheduler 3 calls its job store from the scheduler thread without catching errors around `update_job`: one
failed statement ends that thread, and with it every job (no pulls, no ticks, no trading) while the engine's
heartbeat goes on and looks healthy. On PostgreSQL a session can end under the engine at any moment (a server restart
or failover, `pg_terminate_backend`, a network cut); SQLAlchemy then invalidates the connection, so the same call on
a fresh connection succeeds. Each job-store call here is retried a few times on such a disconnect (or a busy SQLite
file) before the error is let through; a server that stays away is the storage guard's business.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

log = logging.getLogger("quantdesk.jobs")
RETRIES = 4
BACKOFF_S = 0.25


def _transient(exc: BaseException) -> bool:
    """A disconnect (the connection was invalidated: the next checkout is a fresh session) or a busy SQLite file."""
    return bool(getattr(exc, "connection_invalidated", False)) or "database is locked" in str(exc)


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import DBAPIError

        for attempt in range(1, RETRIES + 1):
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as exc:
                if attempt == RETRIES or not _transient(exc):
                    raise
                log.warning("job store: %s failed (%s); retrying on a fresh connection", method.__name__,
                            str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
                time.sleep(BACKOFF_S * attempt)
        raise AssertionError("unreachable")

    return call


class ResilientJobStore(SQLAlchemyJobStore):
    """SQLAlchemyJobStore whose calls are retried on a lost session instead of ending the scheduler thread."""

    lookup_job = _retrying(SQLAlchemyJobStore.lookup_job)
    get_due_jobs = _retrying(SQLAlchemyJobStore.get_due_jobs)
    get_next_run_time = _retrying(SQLAlchemyJobStore.get_next_run_time)
    get_all_jobs = _retrying(SQLAlchemyJobStore.get_all_jobs)
    add_job = _retrying(SQLAlchemyJobStore.add_job)
    update_job = _retrying(SQLAlchemyJobStore.update_job)
    remove_job = _retrying(SQLAlchemyJobStore.remove_job)
    remove_all_jobs = _retrying(SQLAlchemyJobStore.remove_all_jobs)
