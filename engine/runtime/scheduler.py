"""APScheduler 3 with its SQLAlchemy job store in state.db, configured deliberately.

- coalesce=True: after a stall (suspend, long job) a job runs once, not once per missed slot; jobs are "catch up to
  now" operations (pull since last stored bar, tick the last closed bar), so repeats would only waste time.
- max_instances=1: a slow pull or tick never overlaps itself (two ticks for the same bar would race the same order).
- misfire_grace_time=runtime.misfire_grace_s: a run late by less than that still happens; later ones are dropped
  (coalesced into the next slot) instead of firing a stale tick.
- A thread pool of 4: the command poller and heartbeat have their own threads, so they never wait behind jobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from engine.clock import timeframe_ms
from engine.config import Settings
from engine.store.db import Store

JOBSTORE_TABLE = "apscheduler_jobs"
JOB_FUNC = "engine.runtime.jobs:run_job"


def make_scheduler(store: Store, misfire_grace_s: int, workers: int = 4, table: str = JOBSTORE_TABLE) -> Any:
    """A paused-start BackgroundScheduler whose job store is a table in state.db (one table per engine name)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    from engine.runtime.jobstore import ResilientJobStore

    return BackgroundScheduler(
        jobstores={"default": ResilientJobStore(engine=store.engine, tablename=table)},
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(misfire_grace_s)},
        timezone=timezone.utc)


def install_jobs(scheduler: Any, intervals: dict[str, float], first_delay_s: float = 0.0,
                 delays: dict[str, float] | None = None) -> list[str]:
    """Replace the stored job set with `intervals` (job name -> seconds); stale jobs from old configs are removed.

    `delays` postpones the first run of some jobs (e.g. monitors wait until the first pulls caught up)."""
    wanted = set(intervals)
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            job.remove()
    now = datetime.now(timezone.utc)
    for name, seconds in sorted(intervals.items()):
        if seconds <= 0:
            raise ValueError(f"job {name}: interval must be positive, got {seconds!r}")
        start = now + timedelta(seconds=first_delay_s + (delays or {}).get(name, 0.0))
        scheduler.add_job(JOB_FUNC, "interval", args=[name], id=name, name=name, replace_existing=True,
                          seconds=seconds, next_run_time=start)
    return sorted(wanted)


def add_one_off(scheduler: Any, name: str) -> None:
    """Run a registered job once, now (e.g. retrain on operator request)."""
    scheduler.add_job(JOB_FUNC, "date", args=[name], id=f"{name}:once", name=name, replace_existing=True,
                      run_date=datetime.now(timezone.utc))


def add_interval_job(scheduler: Any, name: str, seconds: float) -> None:
    """Start one more interval job in a running engine (e.g. the tick of a challenger that was just started)."""
    scheduler.add_job(JOB_FUNC, "interval", args=[name], id=name, name=name, replace_existing=True, seconds=seconds,
                      next_run_time=datetime.now(timezone.utc))


def remove_job(scheduler: Any, name: str) -> None:
    """Stop one job of a running engine when it is scheduled (e.g. the tick of a retired challenger)."""
    if scheduler.get_job(name) is not None:
        scheduler.remove_job(name)


def job_intervals(settings: Settings, speed: float) -> dict[str, float]:
    """Wall-clock seconds between runs of each job, so bars closing every step/speed seconds are caught quickly."""
    speed = max(speed, 1e-9)
    out: dict[str, float] = {}
    for tf in settings.data.timeframes:
        bar_wall = timeframe_ms(tf) / 1000 / speed
        for symbol in settings.data.symbols:
            out[f"pull:{settings.data.source}:{symbol}:{tf}"] = max(0.25, min(settings.data.pull_interval_s,
                                                                             bar_wall / 4))
    for inst_id, inst in settings.strategies.items():
        if inst.enabled:
            out[f"tick:{inst_id}"] = tick_interval(inst.timeframe, speed)
            out[f"retrain:{inst.strategy or inst_id}"] = settings.ml.retrain_interval_hours * 3600
            if settings.reopt.enabled:
                out[f"reopt:{inst_id}"] = settings.reopt.interval_hours * 3600
    out["broker:process"] = 0.5
    out["equity"] = max(0.5, settings.runtime.equity_interval_s / max(1.0, speed) if speed > 1 else
                        settings.runtime.equity_interval_s)
    out["monitors"] = settings.runtime.monitor_interval_s
    out["leaderboard"] = max(10.0, 5 * settings.runtime.equity_interval_s)
    out["reconcile"] = settings.execution.reconcile_interval_s
    out["funding"] = 60.0
    out["pull-feeds"] = max(2.0, 300.0 / speed)  # hourly and daily series: a few pulls per simulated hour
    out["pull-funding"] = max(2.0, 600.0 / speed)  # settlements every 8h
    return out


def tick_interval(timeframe: str, speed: float) -> float:
    """Wall-clock seconds between tick checks of an instance: a few per bar, at most 5 s."""
    return max(0.25, min(5.0, timeframe_ms(timeframe) / 1000 / max(speed, 1e-9) / 4))


def engine_speed(settings: Settings) -> float:
    """Simulated seconds per wall second: the simulator (or an exchange twin on a base URL) runs sped up."""
    sped_up = settings.data.source == "sim" or bool(settings.exchange.base_url)
    return settings.simulator.speed if sped_up else 1.0


def challenger_jobs(store: Store, settings: Settings) -> dict[str, float]:
    """Tick jobs of the challengers re-optimisation started (they are not in config, they live in state.db)."""
    from engine.trading.reoptimize import running_challengers

    return {f"tick:{c.id}": tick_interval(c.timeframe, engine_speed(settings)) for c in running_challengers(store)}


def reopt_delays(intervals: dict[str, float], settings: Settings) -> dict[str, float]:
    """First run of each re-optimisation job: `reopt.first_run_delay_s` after start, out of the start-up rush."""
    return {n: min(iv, settings.reopt.first_run_delay_s) for n, iv in intervals.items() if n.startswith("reopt:")}
