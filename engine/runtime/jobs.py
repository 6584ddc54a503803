"""Scheduler jobs: one entry point (`run_job`) that APScheduler's SQLAlchemy job store can reference by name.

The store persists jobs as "engine.runtime.jobs:run_job" plus a job name, so nothing unpicklable is stored; the
running engine registers the callables behind each name. Every run is recorded in `job_runs` (for the console's
Jobs screen); an exception becomes a `job.error` alert and the scheduler keeps running.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from typing import Any, Callable

from sqlalchemy import delete, func, insert, select, update

from engine.clock import now_ms
from engine.store.db import Store
from engine.store.ops import raise_alert
from engine.store.schema import job_runs

log = logging.getLogger("quantdesk.jobs")
_handlers: dict[str, Callable[[], Any]] = {}
_store: Store | None = None
_lock = threading.Lock()


def install(store: Store, handlers: dict[str, Callable[[], Any]]) -> None:
    """Register the running engine's store and job callables (called once at engine start)."""
    global _store
    with _lock:
        _store = store
        _handlers.clear()
        _handlers.update(handlers)


def add_handler(name: str, fn: Callable[[], Any]) -> None:
    """Register one more job callable (e.g. a one-off retrain)."""
    with _lock:
        _handlers[name] = fn


def run_job(name: str) -> Any:
    """Run a registered job, record it in job_runs, and turn an exception into a job.error alert."""
    with _lock:
        fn, store = _handlers.get(name), _store
    if store is None:
        raise RuntimeError("jobs: no engine installed (install() was not called)")
    started = now_ms()
    with store.begin() as conn:
        run_id = int(conn.execute(insert(job_runs).values(job_id=name, started_at=started)).inserted_primary_key[0])
    if fn is None:
        _finish(store, run_id, False, None, f"job {name!r} is not registered in this engine")
        raise_alert(store, "warning", "job.error", f"job {name!r} is not registered", {"job": name}, "scheduler")
        return None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - a failing job is an alert, never a dead scheduler
        log.exception("job %s failed", name)
        _finish(store, run_id, False, None, "".join(traceback.format_exception_only(exc)).strip())
        try:
            raise_alert(store, "warning", "job.error", f"job {name} failed: {type(exc).__name__}: {exc}",
                        {"job": name, "run_id": run_id}, "scheduler")
        except Exception:  # noqa: BLE001
            log.exception("could not record job alert")
        return None
    _finish(store, run_id, True, result, None)
    return result


def _finish(store: Store, run_id: int, ok: bool, result: Any, error: str | None) -> None:
    with store.begin() as conn:
        conn.execute(update(job_runs).where(job_runs.c.id == run_id).values(
            finished_at=now_ms(), ok=int(ok), result=None if result is None else json.dumps(result, default=str)[:4000],
            error=error))


def prune_job_runs(store: Store, keep: int = 20_000) -> int:
    """Delete all but the newest `keep` job_runs rows (fast-cycling jobs add several per second); returns rows gone."""
    with store.begin() as conn:
        top = conn.execute(select(func.max(job_runs.c.id))).scalar()
        if top is None or top <= keep:
            return 0
        return int(conn.execute(delete(job_runs).where(job_runs.c.id <= top - keep)).rowcount or 0)
