"""A real APScheduler with its job store in state.db; the command poller; the lock file; offline control."""

from __future__ import annotations

import json
import threading

import pytest

from tests.support.backends import raw
from engine.config import LifecycleConfig, Settings, settings_with
from engine.runtime import jobs
from engine.control.commands import CommandProcessor, EngineHooks
from tests.support.waiting import wait_for
from engine.control.client import ControlClient, submit_command
from engine.runtime.lockfile import EngineLock, EngineLockedError, lock_path, read_pid
from engine.runtime.scheduler import JOBSTORE_TABLE, install_jobs, make_scheduler
from engine.store.ops import list_alerts


def test_failing_job_becomes_an_alert_and_the_scheduler_keeps_running(store):
    counts = {"ok": 0, "boom": 0}

    def ok():
        counts["ok"] += 1
        return {"n": counts["ok"]}

    def boom():
        counts["boom"] += 1
        raise RuntimeError("exchange unreachable")

    jobs.install(store, {"ok": ok, "boom": boom})
    sched = make_scheduler(store, misfire_grace_s=7)
    sched.start(paused=True)
    install_jobs(sched, {"ok": 0.2, "boom": 0.2})
    sched.resume()
    try:
        wait_for(lambda: counts["boom"] >= 3 and counts["ok"] >= 3, 15, "three runs of each job", interval=0.05)
        assert sched.running
        job = sched.get_job("ok")
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 7
    finally:
        sched.shutdown(wait=True)
    with raw(store) as conn:
        runs = conn.execute("SELECT job_id, ok, error FROM job_runs").fetchall()
        stored = conn.execute(f"SELECT id FROM {JOBSTORE_TABLE}").fetchall()
    assert {r[0] for r in stored} == {"ok", "boom"}  # persisted in state.db
    assert any(r[0] == "boom" and r[1] == 0 and "exchange unreachable" in r[2] for r in runs)
    assert any(r[0] == "ok" and r[1] == 1 for r in runs)
    assert any(a.rule == "job.error" and "boom" in a.message for a in list_alerts(store))


def test_install_jobs_drops_jobs_no_longer_configured(store):
    jobs.install(store, {"a": lambda: 1, "b": lambda: 2})
    sched = make_scheduler(store, misfire_grace_s=5)
    sched.start(paused=True)
    try:
        install_jobs(sched, {"a": 60.0, "b": 60.0})
        install_jobs(sched, {"a": 60.0})
        assert [j.id for j in sched.get_jobs()] == ["a"]
        with pytest.raises(ValueError, match="job c"):
            install_jobs(sched, {"c": 0})
    finally:
        sched.shutdown(wait=False)


def test_command_poller_runs_each_command_once_and_writes_results(store):
    canceled = []
    hooks = EngineHooks(cancel_all=lambda inst: canceled.append(inst) or 3, flatten=lambda: {"canceled": 1, "closed": 2},
                        retrain=lambda s: f"retrain {s}", stop=lambda: None)
    proc = CommandProcessor(store, hooks, poll_ms=10, lifecycle_cfg=LifecycleConfig())
    halt_id = submit_command(store, "halt", {"reason": "t"}, "console", "alice")
    flat_id = submit_command(store, "flatten", {}, "console", "alice")
    bad_id = submit_command(store, "resume", {"confirm": False}, "cli", "bob")
    assert proc.poll_once() == 3 and proc.poll_once() == 0
    with raw(store) as conn:
        rows = {r[0]: (r[1], json.loads(r[2])) for r in conn.execute("SELECT id, status, result FROM commands")}
    assert rows[halt_id][0] == "done" and rows[halt_id][1]["data"]["canceled"] == 3 and canceled == [None]
    assert rows[flat_id][0] == "done" and rows[flat_id][1]["data"]["closed"] == 2
    assert rows[bad_id][0] == "failed" and "confirmation" in rows[bad_id][1]["message"]


def test_halt_without_engine_persists_and_flatten_waits_for_the_engine(store):
    client = ControlClient(store, source="console", user="alice")
    assert not client.engine_alive()
    res = client.halt("no engine")
    assert res.ok and "no engine running" in res.message
    assert client.status().trading_state == "HALTED"
    flat = client.flatten()
    assert flat.ok and flat.data["queued"] and "next start" in flat.message
    with raw(store) as conn:
        pending = conn.execute("SELECT command FROM commands WHERE status='pending'").fetchall()
        audit = conn.execute("SELECT source, \"user\", action FROM audit_log").fetchall()
    assert pending == [("flatten",)]
    assert ("console", "alice", "command.halt") in audit and ("console", "alice", "command.flatten") in audit
    with pytest.raises(ValueError, match="source"):
        ControlClient(store, source="web")


def test_lock_file_allows_one_engine_per_state_db(tmp_path):
    settings = settings_with(Settings(), store={"path": str(tmp_path / "state.db")})
    first = EngineLock(lock_path(settings))
    first.acquire()
    try:
        assert read_pid(settings) is not None
        with pytest.raises(EngineLockedError, match="another engine"):
            EngineLock(lock_path(settings)).acquire()
    finally:
        first.release()
    assert read_pid(settings) is None
    again = EngineLock(lock_path(settings))
    again.acquire()
    again.release()


def test_command_poller_thread_stops_on_request(store):
    hooks = EngineHooks(cancel_all=lambda i: 0, flatten=lambda: {}, retrain=lambda s: "", stop=lambda: None)
    proc = CommandProcessor(store, hooks, poll_ms=5, lifecycle_cfg=LifecycleConfig())
    proc.start()
    cid = submit_command(store, "reduce", {"reason": "x"}, "cli", "bob")
    wait_for(lambda: _status(store, cid) == "done", 5, "the reduce command", interval=0.01)
    proc.stop()
    assert not any(t.name == "command-poller" and t.is_alive() for t in threading.enumerate())


def _status(store, cmd_id):  # noqa: ANN001, ANN202
    with raw(store) as conn:
        return conn.execute("SELECT status FROM commands WHERE id=?", (cmd_id,)).fetchone()[0]


def test_status_reports_equity_day_pnl_drawdown_and_counts(store):
    from sqlalchemy import insert

    from engine.store.schema import equity_snapshots

    day = 86_400_000
    t = 20_000 * day
    snaps = [(t - 3_600_000, 100_000.0), (t + 1_000, 101_000.0), (t + 2_000, 105_000.0), (t + 3_000, 102_000.0)]
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots), [
            {"ts": ts, "scope": "portfolio", "equity": eq, "cash": eq - 10_000, "gross_exposure": 15_000.0,
             "net_exposure": 10_000.0, "unrealized_pnl": 0.0, "realized_pnl": 0.0} for ts, eq in snaps])
    st = ControlClient(store, source="cli").status()
    assert st.equity == 102_000.0 and st.day_pnl == 2_000.0  # vs the last snapshot before the day began
    assert st.drawdown == pytest.approx(1 - 102_000 / 105_000)
    assert st.gross_exposure == 15_000.0 and st.net_exposure == 10_000.0
    assert st.open_orders == 0 and st.open_positions == 0 and st.mode == "unknown" and not st.engine_alive


def test_live_mode_needs_the_flag_and_exchange_data(tmp_path):
    from engine.runtime.service import EngineService

    live = settings_with(Settings(), store={"path": str(tmp_path / "s.db")}, execution={"mode": "live"})
    with pytest.raises(ValueError, match="--live"):
        EngineService(live, live=False, install_signals=False)
    svc = EngineService(live, live=True, environ={"QUANTDESK_API_KEY": "k", "QUANTDESK_API_SECRET": "s"},
                        install_signals=False)
    svc.store = ControlClient(tmp_path / "s.db", source="cli").store
    with pytest.raises(ValueError, match="data.source"):
        svc._build_trading()


def test_job_runs_are_pruned_to_the_newest_rows(store):
    from engine.runtime.jobs import prune_job_runs

    jobs.install(store, {"tiny": lambda: 1})
    for _ in range(30):
        jobs.run_job("tiny")
    assert prune_job_runs(store, keep=10) == 20
    with raw(store) as conn:
        assert conn.execute("SELECT COUNT(*), MIN(id) FROM job_runs").fetchone() == (10, 21)


def test_commands_interrupted_by_a_dead_engine_are_requeued_or_failed(store):
    from sqlalchemy import update as sa_update

    from engine.store.schema import commands

    halt_id = submit_command(store, "halt", {"reason": "x"}, "cli", "bob")
    promote_id = submit_command(store, "promote", {"instance_id": "qm", "confirm": True}, "cli", "bob")
    with store.begin() as conn:
        conn.execute(sa_update(commands).values(status="running"))
    hooks = EngineHooks(cancel_all=lambda i: 0, flatten=lambda: {}, retrain=lambda s: "", stop=lambda: None)
    proc = CommandProcessor(store, hooks, poll_ms=10, lifecycle_cfg=LifecycleConfig())
    assert proc.recover_interrupted() == {"requeued": 1, "failed": 1}
    with raw(store) as conn:
        status = dict(conn.execute("SELECT id, status FROM commands").fetchall())
    assert status == {halt_id: "pending", promote_id: "failed"}
