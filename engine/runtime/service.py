"""The engine process: lock, heartbeat, command poller, brokers, and the APScheduler jobs that trade.

Start order is chosen so the desk can be stopped at once: lock -> engine_status -> command poller and heartbeat
threads (a HALT works from the first second) -> broker recovery (HALTED stays HALTED and its orders are canceled) ->
history backfill for warm-up -> scheduler. SIGTERM/SIGINT set a stop event; shutdown waits for running jobs briefly,
marks engine_status stopped and releases the lock.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from typing import Any

from sqlalchemy import select, update

from engine.clock import now_ms
from engine.config import Settings
from engine.monitoring.alerts.service import AlertService, engine_notice
from engine.runtime.job_handlers import JobHandlers
from engine.runtime.live_steps import after_rearm, rearm_at_start, say_live_instances
from engine.runtime.lockfile import EngineLockedError, boot_id, engine_lock
from engine.runtime.logs import log_path, setup_logging  # noqa: F401 - log_path is part of this module's API
from engine.runtime.scheduler import job_intervals
from engine.runtime.storage_guard import LockLost, StorageGuard, signal_halt, storage_fault_cancel
from engine.store.ops import audit, raise_alert
from engine.store.schema import engine_status
from engine.store.urls import redact

log = logging.getLogger("quantdesk.engine")
VERSION = "0.1.0"


class EngineService(JobHandlers):
    """One engine over one state.db; `run()` blocks until SIGTERM/SIGINT or a stop command."""

    def __init__(self, settings: Settings, *, live: bool = False, environ: dict[str, str] | None = None,
                 install_signals: bool = True, log_to_stderr: bool = True) -> None:
        if live and settings.execution.mode != "live":
            import dataclasses
            settings = dataclasses.replace(settings, execution=dataclasses.replace(settings.execution, mode="live"))
        if settings.execution.mode == "live" and not live:
            raise ValueError("execution.mode: live trading needs the --live flag and a typed confirmation")
        self.settings = settings
        self.name = settings.engine.name  # this engine's name on the desk (several may share one store)
        self.mode = settings.execution.mode
        self.environ = dict(os.environ if environ is None else environ)
        self.install_signals = install_signals
        self.log_to_stderr = log_to_stderr  # a detached engine logs to its rotating file only (no engine.out copy)
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # broker built and recovered
        self.lock = engine_lock(settings)
        self.alerting = AlertService(settings, self.environ)  # a bad channel URL stops the engine here (ConfigError)
        self.store: Any = None
        self.source: Any = None
        self.broker: Any = None
        self.trader: Any = None
        self.monitors: Any = None
        self.scheduler: Any = None
        self.poller: Any = None
        self._hb_thread: threading.Thread | None = None
        self._instances: dict[str, Any] = {}
        self.guard: StorageGuard | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, wait for a stop request, shut down cleanly; returns the exit code."""
        from engine.runtime.hardening import harden_desk, harden_process

        harden_process()  # 0700 folders, 0600 files from here on (logs, lock, backups, models, reports)
        setup_logging(self.settings, to_stderr=self.log_to_stderr)
        self.lock.acquire()
        harden_desk(self.settings)
        from engine.store.engines import bind_engine, unbind_engine

        bind_engine(self.name)  # orders, positions and trading state read in this process are this engine's
        try:
            self._start()
            log.info("engine running (pid %s, mode %s); waiting for stop", os.getpid(), self.mode)
            while not self.stop_event.wait(0.5):
                pass
            return 0
        finally:
            self._shutdown()
            unbind_engine()
            self.lock.release()

    def request_stop(self, *_: Any) -> None:
        """Ask the engine to stop (signal handler and `stop` command)."""
        self.stop_event.set()

    def _start(self) -> None:
        from engine.control.commands import CommandProcessor, EngineHooks

        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit is a write error (EFBIG), not a kill
            # a front end that cannot write the store (locked, read-only) halts the engine by signal
            signal.signal(signal.SIGUSR1, lambda *_: signal_halt(lambda: self.store, lambda: self._cancel_all(None)))
        from engine import start_timeline

        self.store = self._open_store()
        start_timeline.mark("store")
        self._write_status(started=True)
        self.guard = StorageGuard(self.store.path,
                                  on_cancel=lambda: storage_fault_cancel(self.broker, lambda: self._cancel_all(None)),
                                  on_alert=self._storage_alert,
                                  label=redact(self.store.url) if self.store.path is None else None)
        self.guard.arm()
        audit(self.store, "engine", "engine.start", {"pid": os.getpid(), "mode": self.mode}, user="engine")
        self.alerting.start(self.store)  # sender threads: outbox delivery, ack escalation, daily summary
        self.alerting.notify("engine", "info", *engine_notice(True, self.mode), rule="engine.start")
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._hb_thread.start()
        hooks = EngineHooks(cancel_all=self._cancel_all, flatten=self._flatten, retrain=self._retrain_now,
                            stop=self.request_stop)
        self.poller = CommandProcessor(self.store, hooks, self.settings.runtime.command_poll_ms,
                                       self.settings.lifecycle, name=self.name)
        interrupted = self.poller.recover_interrupted()
        if any(interrupted.values()):
            audit(self.store, "engine", "commands.recovered", interrupted, user="engine")
        self.poller.start()  # commands work from here on; broker actions wait for `ready`
        start_timeline.mark("control threads")
        self._build_trading()
        self._recover()
        self.ready.set()
        self._backfill()
        from engine.runtime.streaming import StreamStatus, start_streams

        self.streams = start_streams(self.settings, self.store, self.source)
        self._stream_status = StreamStatus(self.streams, self.store)
        if self.streams is not None:  # paper fills on the streamed book, VPIN on the streamed tape
            from engine.data.streams import StreamedSource

            self.source = StreamedSource(self.source, self.streams)
            for user in (self.broker, self.trader):
                if hasattr(user, "source"):
                    user.source = self.source
        self._start_scheduler()

    def _open_store(self) -> Any:
        """The engine's store, its SQLite page caches bounded per pooled connection: unbounded, each filled up to
        2 MB as state.db grew (engine.store.page_cache)."""
        from engine.store import open_store
        from engine.store.page_cache import cap_page_cache

        return cap_page_cache(open_store(self.settings.store_url()))

    def _build_trading(self) -> None:
        """Brokers by stage behind one router: paper always, the exchange only when started with --live. A live
        engine connects and re-arms protection first, before importing and building anything else."""
        exchange_broker = None
        if self.mode == "live":
            from engine.execution.live_start import LiveStartError, connect_exchange_broker

            try:
                exchange_broker = connect_exchange_broker(self.store, self.settings, self.environ)
            except LiveStartError as exc:
                raise_alert(self.store, "critical", "engine.live_start", f"live start refused: {exc}", {})
                raise
            rearm_at_start(self.store, exchange_broker)
            after_rearm(self.store, self.settings, exchange_broker)
        from engine.execution.paper_broker import PaperBroker
        from engine.execution.router import StageRouter
        from engine.monitoring.monitors import Monitors
        from engine.trading.lifecycle import get_instance, sync_instances
        from engine.trading.trader import Trader

        self.source = self._make_source()
        bt = self.settings.backtest
        paper = PaperBroker(self.store, self.source, fee_maker=bt.fee_maker, fee_taker=bt.fee_taker,
                            latency_ms=self.settings.execution.paper_latency_ms,
                            queue_ahead_fraction=self.settings.execution.queue_ahead_fraction)
        self._instances = {i.id: i for i in sync_instances(self.store, self.settings)}
        self.broker = StageRouter(self.store, paper, exchange_broker,
                                  lambda inst_id: get_instance(self.store, inst_id).stage)
        from engine.risk.account_budget import order_budget_check

        self.broker.budget = order_budget_check(self.store, self.settings.triggers, self.broker.mark_price)
        if self.mode == "live":
            say_live_instances(self.store, self._instances)
        self.monitors = Monitors(self.store, self.settings, self.source)
        # the sizer reads the monitors' VPIN readings (one shared mapping, given at start)
        self.trader = Trader(self.store, self.settings, self.broker, self.source, vpin_cdf=self.monitors.toxicity.cdf)
        if exchange_broker is not None and getattr(exchange_broker, "protector", None) is not None:
            # exchange-side protective orders take each strategy's own stop levels where it declares a stop
            from engine.execution.protection import config_spec_of
            from engine.trading.stops import protection_spec_of

            exchange_broker.protector.spec_of = protection_spec_of(
                self.trader.stop_watch, lambda inst_id: self.trader.stops_of(get_instance(self.store, inst_id)),
                config_spec_of(self.settings.risk))

    def _make_source(self) -> Any:
        """The engine's one market source, handed to the broker, trader, monitors, pulls and retraining; the
        simulator resumes its clock from the last market time in state.db."""
        from engine.runtime.child_jobs import engine_source
        from engine.trading.portfolio import last_market_ts

        return engine_source(self.settings, last_market_ts(self.store))

    def _recover(self) -> None:
        """Reconcile in-flight orders; a HALTED desk cancels whatever is still open."""
        from engine.risk.trading_state import TradingState, get_state

        summary = self.broker.recover()
        state = get_state(self.store)
        if state.state is TradingState.HALTED:
            summary["canceled_on_halt"] = self.broker.cancel_all(None)
        audit(self.store, "engine", "engine.recover", {**summary, "trading_state": state.state.value}, user="engine")
        log.info("recovered: %s (trading state %s)", summary, state.state.value)

    def _backfill(self) -> None:
        """Pull enough history for every instance's warm-up before the first tick."""
        for tf in self.settings.data.timeframes:
            for symbol in self.settings.data.symbols:
                try:
                    self._pull(symbol, tf, warmup=True)
                except Exception as exc:  # noqa: BLE001 - a source error is an alert and a retry by the pull job
                    raise_alert(self.store, "warning", "engine.backfill", f"backfill {symbol} {tf} failed: {exc}",
                                {"symbol": symbol, "timeframe": tf})

    def _start_scheduler(self) -> None:
        from engine.runtime import jobs
        from engine.runtime.scheduler import challenger_jobs, install_jobs, make_scheduler, reopt_delays

        # the simulator, or the exchange twin on a base URL (its --speed given as [simulator] speed), runs sped up
        sped_up = self.settings.data.source == "sim" or bool(self.settings.exchange.base_url)
        speed = self.settings.simulator.speed if sped_up else 1.0
        intervals = job_intervals(self.settings, speed)
        backup_every_s = self.settings.store.backup_interval_hours * 3600
        if self.store.path is not None and backup_every_s > 0:
            intervals["backup"] = backup_every_s  # consistent copy + retention (engine/store/backup.py)
        intervals["retention"] = self.settings.retention.interval_hours * 3600  # engine/store/retention.py
        intervals.update(challenger_jobs(self.store, self.settings))  # paper challengers live in state.db
        handlers = {name: self._handler(name) for name in intervals}
        jobs.install(self.store, handlers)
        from engine.runtime.scheduler import JOBSTORE_TABLE
        from engine.store.engines import jobstore_table

        self.scheduler = make_scheduler(self.store, self.settings.runtime.misfire_grace_s,
                                        table=jobstore_table(JOBSTORE_TABLE, self.name))
        self.scheduler.start(paused=True)
        delays = {n: iv for n, iv in intervals.items() if n.split(":")[0] in ("monitors", "reconcile", "funding")}
        delays.update(self._retrain_delays(intervals))
        delays.update(reopt_delays(intervals, self.settings))
        delays["retention"] = min(intervals["retention"], 120.0)
        if "backup" in intervals:
            delays["backup"] = min(intervals["backup"], 300.0)  # a new desk gets its first backup within minutes
        install_jobs(self.scheduler, intervals, delays=delays)
        self.scheduler.resume()
        self._write_status(info_update={"jobs": sorted(intervals), "phase": "running"})

    def _retrain_delays(self, intervals: dict[str, float]) -> dict[str, float]:
        """First-run delay of each retrain job: soon after start when the strategy has no champion yet (so the
        overlay and Kelly sizing start working on a new desk), otherwise one full interval."""
        from engine.store.schema import models

        ml = self.settings.ml
        with self.store.connect() as conn:
            have = {r[0] for r in conn.execute(select(models.c.strategy).where(models.c.role == "champion"))}
        delays: dict[str, float] = {}
        staggered = 0
        for name in sorted(n for n in intervals if n.startswith("retrain:")):
            strategy = name.split(":", 1)[1]
            if ml.train_at_start and strategy not in have:
                staggered += 1
                delays[name] = ml.first_train_delay_s * staggered
            else:
                delays[name] = intervals[name]
        return delays

    def _shutdown(self) -> None:
        if self.guard is None:  # the store never took a write (corrupt, read-only, ...): main prints the cause
            if self.store is not None:
                self.store.dispose()
            return
        log.info("engine stopping")
        self.stop_event.set()  # the heartbeat stops (a start that failed never set it)
        self.guard.disarm()  # closing the store below removes its -wal file: not a storage fault
        if getattr(self, "streams", None) is not None:
            self.streams.stop()
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=True)
            except Exception:  # noqa: BLE001
                log.exception("scheduler shutdown failed")
        if self.poller is not None:
            self.poller.stop()
        if self.store is not None:
            try:
                self._write_status(info_update={"stopped": True, "phase": "stopped"})
                audit(self.store, "engine", "engine.stop", {"pid": os.getpid()}, user="engine")
            except Exception as exc:  # noqa: BLE001 - a store refusing writes: the cause is reported by main
                log.error("could not record the stop in the store: %s", exc)
            if self.alerting.sender is not None:
                self.alerting.notify("engine", "info", *engine_notice(False, self.mode), rule="engine.stop")
                self.alerting.stop()
            self.store.dispose()

    # --- heartbeat ------------------------------------------------------------------------------------------------
    def _write_status(self, started: bool = False, info_update: dict[str, Any] | None = None) -> None:
        """This engine's heartbeat row (engine_status, by name: id 1 is main's, as front ends always read it)."""
        from engine.store.engines import insert_status_row

        now = now_ms()
        mine = engine_status.c.name == self.name
        with self.store.begin() as conn:
            row = conn.execute(select(engine_status).where(mine)).mappings().first()
            if started or row is None:
                values = dict(pid=os.getpid(), host=socket.gethostname(), mode=self.mode, started_at=now,
                              heartbeat_at=now, version=VERSION, info=json.dumps({"stopped": False, "phase": "starting",
                                                                     "boot_id": boot_id()}))
                if row is None:
                    insert_status_row(conn, self.name, values)
                else:
                    conn.execute(update(engine_status).where(mine).values(**values))
                return
            values: dict[str, Any] = {"heartbeat_at": now}
            if info_update:
                info = json.loads(row["info"] or "{}")
                info.update(info_update)
                values["info"] = json.dumps(info, default=str)
            conn.execute(update(engine_status).where(mine, engine_status.c.pid == os.getpid()).values(**values))

    def _beat(self, update: dict[str, Any] | None) -> None:
        """One heartbeat: the desk lock still ours (a server store's lock session may have been ended: re-taken, or
        LockLost when another engine has it), then the status row written."""
        try:
            if self.lock.check():
                log.warning("the database server ended the desk lock's session; lock taken again")
        except EngineLockedError as exc:
            raise LockLost(str(exc)) from exc
        self._write_status(info_update=update)

    def _heartbeat_loop(self) -> None:
        from engine.runtime.heap import HeapTrimmer

        trimmer = HeapTrimmer()  # freed pages of the job threads go back to the OS (engine/runtime/heap.py)
        while not self.stop_event.is_set():
            try:
                status = getattr(self, "_stream_status", None)
                update = status.due() if status else None
                self.guard.check(lambda: self._beat(update))  # a persistent storage fault or a lost desk lock
                # halts and exits from here
                trimmer.maybe_trim()
            except Exception:  # noqa: BLE001 - a busy database must not kill the heartbeat
                log.exception("heartbeat failed")
            self.stop_event.wait(self.settings.runtime.heartbeat_interval_s)

    # --- operator actions (command poller thread) ----------------------------------------------------------------
    def _own_scope(self) -> str:
        """The trading-state scope this engine's own actions move (engine/store/engines.py own_state_scope)."""
        from engine.store.engines import own_state_scope

        with self.store.connect() as conn:
            return own_state_scope(conn)

    def _cancel_all(self, instance_id: str | None) -> int:
        """Cancel open orders; during start-up recovery does it (a HALTED desk cancels everything there)."""
        if not self.ready.is_set():
            return 0
        return int(self.broker.cancel_all(instance_id))

    def _flatten(self) -> dict[str, Any]:
        """Emergency flatten: REDUCING at least, then engine.execution.flatten until flat on every venue."""
        from engine.execution.flatten import flatten_until_flat
        from engine.risk.trading_state import TradingState, get_state, set_state

        if get_state(self.store).state is TradingState.ACTIVE:
            set_state(self.store, TradingState.REDUCING, "flatten: stay flat until an operator resumes", "engine",
                      scope=self._own_scope())
        if not self.ready.wait(120):
            raise RuntimeError("flatten: the broker did not finish start-up recovery within 120s")
        ex = self.settings.execution
        report = flatten_until_flat(self.store, self.broker.brokers, max_rounds=ex.flatten_max_rounds,
                                    round_wait_s=ex.flatten_round_wait_s)
        try:
            self._equity()  # exposure on the desk and in `quantdesk status` drops now, not at the next snapshot
        except Exception:  # noqa: BLE001 - the flatten itself succeeded; the equity job will retry the snapshot
            log.exception("equity snapshot after flatten failed")
        return report.summary()
