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

from sqlalchemy import insert, select, update

from engine.clock import now_ms
from engine.config import Settings
from engine.runtime.lockfile import EngineLock, boot_id, lock_path
from engine.runtime.logs import log_path, setup_logging  # noqa: F401 - log_path is part of this module's API
from engine.runtime.scheduler import job_intervals
from engine.store.ops import audit, raise_alert
from engine.store.schema import engine_status

log = logging.getLogger("quantdesk.engine")
VERSION = "0.1.0"
API_KEY_ENV, API_SECRET_ENV = "QUANTDESK_API_KEY", "QUANTDESK_API_SECRET"


class EngineService:
    """One engine over one state.db; `run()` blocks until SIGTERM/SIGINT or a stop command."""

    def __init__(self, settings: Settings, *, live: bool = False, environ: dict[str, str] | None = None,
                 install_signals: bool = True) -> None:
        if live and settings.execution.mode != "live":
            import dataclasses
            settings = dataclasses.replace(settings, execution=dataclasses.replace(settings.execution, mode="live"))
        if settings.execution.mode == "live" and not live:
            raise ValueError("execution.mode: live trading needs the --live flag and a typed confirmation")
        self.settings = settings
        self.mode = settings.execution.mode
        self.environ = dict(os.environ if environ is None else environ)
        self.install_signals = install_signals
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # broker built and recovered
        self.lock = EngineLock(lock_path(settings))
        self.store: Any = None
        self.source: Any = None
        self.broker: Any = None
        self.trader: Any = None
        self.monitors: Any = None
        self.scheduler: Any = None
        self.poller: Any = None
        self._hb_thread: threading.Thread | None = None
        self._instances: dict[str, Any] = {}

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, wait for a stop request, shut down cleanly; returns the exit code."""
        setup_logging(self.settings)
        self.lock.acquire()
        try:
            self._start()
            log.info("engine running (pid %s, mode %s); waiting for stop", os.getpid(), self.mode)
            while not self.stop_event.wait(0.5):
                pass
            return 0
        finally:
            self._shutdown()
            self.lock.release()

    def request_stop(self, *_: Any) -> None:
        """Ask the engine to stop (signal handler and `stop` command)."""
        self.stop_event.set()

    def _start(self) -> None:
        from engine.control.commands import CommandProcessor, EngineHooks

        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        from engine.store import open_store

        self.store = open_store(self.settings.store_url())
        self._write_status(started=True)
        audit(self.store, "engine", "engine.start", {"pid": os.getpid(), "mode": self.mode}, user="engine")
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._hb_thread.start()
        hooks = EngineHooks(cancel_all=self._cancel_all, flatten=self._flatten, retrain=self._retrain_now,
                            stop=self.request_stop)
        self.poller = CommandProcessor(self.store, hooks, self.settings.runtime.command_poll_ms,
                                       self.settings.lifecycle)
        interrupted = self.poller.recover_interrupted()
        if any(interrupted.values()):
            audit(self.store, "engine", "commands.recovered", interrupted, user="engine")
        self.poller.start()  # commands work from here on; broker actions wait for `ready`
        self._build_trading()
        self._recover()
        self.ready.set()
        self._backfill()
        self._start_scheduler()

    def _build_trading(self) -> None:
        from engine.monitoring.monitors import Monitors
        from engine.trading.lifecycle import sync_instances
        from engine.trading.trader import Trader

        self.source = self._make_source()
        if self.mode == "live":
            from engine.execution.ccxt_broker import CcxtBroker, exchange_from_env

            if not self.settings.data.source.startswith("ccxt:"):
                raise ValueError(f"data.source: live trading needs the exchange's own data (ccxt:<id>), got "
                                 f"{self.settings.data.source!r}")
            exchange = exchange_from_env(self.settings.execution.exchange, self.environ)
            self.broker = CcxtBroker(self.store, exchange, max_retries=self.settings.execution.max_retries,
                                     capital_caps={k: v.capital for k, v in self.settings.strategies.items()},
                                     symbols=list(self.settings.data.symbols))
        else:
            from engine.execution.paper_broker import PaperBroker

            bt = self.settings.backtest
            self.broker = PaperBroker(self.store, self.source, fee_maker=bt.fee_maker, fee_taker=bt.fee_taker,
                                      latency_ms=self.settings.execution.paper_latency_ms,
                                      queue_ahead_fraction=self.settings.execution.queue_ahead_fraction)
        self._instances = {i.id: i for i in sync_instances(self.store, self.settings)}
        self.monitors = Monitors(self.store, self.settings, self.source)
        # the sizer reads the monitors' VPIN readings (one shared mapping, given at start)
        self.trader = Trader(self.store, self.settings, self.broker, self.source, vpin_cdf=self.monitors.toxicity.cdf)

    def _make_source(self) -> Any:
        """The engine's one market source, handed to the broker, trader, monitors, pulls and retraining; the
        simulator resumes its clock from the last market time in state.db."""
        from engine.data.factory import make_source
        from engine.trading.portfolio import last_market_ts

        return make_source(self.settings.data.source, self.settings, resume_ms=last_market_ts(self.store),
                           symbols=self.settings.data.symbols)

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
        from engine.runtime.scheduler import install_jobs, make_scheduler

        speed = self.settings.simulator.speed if self.settings.data.source == "sim" else 1.0
        intervals = job_intervals(self.settings, speed)
        handlers = {name: self._handler(name) for name in intervals}
        jobs.install(self.store, handlers)
        self.scheduler = make_scheduler(self.store, self.settings.runtime.misfire_grace_s)
        self.scheduler.start(paused=True)
        delays = {n: iv for n, iv in intervals.items() if n.split(":")[0] in ("monitors", "reconcile", "funding")}
        delays.update(self._retrain_delays(intervals))
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
        log.info("engine stopping")
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=True)
            except Exception:  # noqa: BLE001
                log.exception("scheduler shutdown failed")
        if self.poller is not None:
            self.poller.stop()
        if self.store is not None:
            self._write_status(info_update={"stopped": True, "phase": "stopped"})
            audit(self.store, "engine", "engine.stop", {"pid": os.getpid()}, user="engine")
            self.store.dispose()

    # --- heartbeat ------------------------------------------------------------------------------------------------
    def _write_status(self, started: bool = False, info_update: dict[str, Any] | None = None) -> None:
        now = now_ms()
        with self.store.begin() as conn:
            row = conn.execute(select(engine_status).where(engine_status.c.id == 1)).mappings().first()
            if started or row is None:
                values = dict(pid=os.getpid(), host=socket.gethostname(), mode=self.mode, started_at=now,
                              heartbeat_at=now, version=VERSION, info=json.dumps({"stopped": False, "phase": "starting",
                                                                     "boot_id": boot_id()}))
                if row is None:
                    conn.execute(insert(engine_status).values(id=1, **values))
                else:
                    conn.execute(update(engine_status).where(engine_status.c.id == 1).values(**values))
                return
            values: dict[str, Any] = {"heartbeat_at": now}
            if info_update:
                info = json.loads(row["info"] or "{}")
                info.update(info_update)
                values["info"] = json.dumps(info, default=str)
            conn.execute(update(engine_status).where(engine_status.c.id == 1, engine_status.c.pid == os.getpid())
                         .values(**values))

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._write_status()
            except Exception:  # noqa: BLE001 - a busy database must not kill the heartbeat
                log.exception("heartbeat failed")
            self.stop_event.wait(self.settings.runtime.heartbeat_interval_s)

    # --- jobs -----------------------------------------------------------------------------------------------------
    def _handler(self, name: str) -> Any:
        kind, _, rest = name.partition(":")
        if kind == "pull":
            symbol_tf = rest[len(self.settings.data.source) + 1:]
            symbol, tf = symbol_tf.rsplit(":", 1)
            return lambda: self._pull(symbol, tf)
        if kind == "tick":
            return lambda: self._tick(rest)
        if kind == "retrain":
            return lambda: self._retrain(rest)
        table = {"broker": self.broker.process, "equity": self._equity, "monitors": self._monitors,
                 "leaderboard": self._leaderboard, "reconcile": self._reconcile, "funding": self._funding,
                 "pull-feeds": self._pull_feeds, "pull-funding": self._pull_funding}
        if kind not in table:
            raise ValueError(f"job {name!r}: unknown job kind {kind!r}")
        return table[kind]

    def _pull(self, symbol: str, timeframe: str, warmup: bool = False) -> dict[str, Any]:
        from engine.data.pulls import pull_candles
        from engine.trading.warmup import warmup_bars

        return pull_candles(self.store, self.source, symbol, timeframe, self.settings,
                            warmup_bars=warmup_bars(self.settings) if warmup else None)

    def _pull_feeds(self) -> dict[str, Any]:
        from engine.data.pulls import pull_feeds

        return pull_feeds(self.store, self.source, self.settings)

    def _pull_funding(self) -> dict[str, Any]:
        from engine.data.pulls import pull_funding

        return pull_funding(self.store, self.source, self.settings)

    def _tick(self, inst_id: str) -> Any:
        from engine.risk.trading_state import TradingState, get_state
        from engine.trading.lifecycle import get_instance

        inst = get_instance(self.store, inst_id)
        if inst.status != "running" or inst.stage == "research":
            return {"skipped": inst.status if inst.status != "running" else "research stage"}
        if get_state(self.store).state is TradingState.HALTED:
            return {"skipped": "HALTED"}
        if not self.trader.due(inst):
            return None
        bar = self.trader.last_closed_bar(inst)
        if not self.trader.bar_stored(inst, bar):  # the bar just closed: pull it now rather than wait for a pull job
            for symbol in inst.symbols:
                self._pull(symbol, inst.timeframe)
        capital = inst.effective_capital(self.settings.lifecycle)
        if hasattr(self.broker, "capital_caps"):  # live: the per-strategy cap follows the current stage
            self.broker.capital_caps[inst.id] = capital
        res = self.trader.tick(inst, capital)
        return {"bar": res.bar_ts, "orders": res.orders, "targets": res.targets, "note": res.note}

    def _equity(self) -> dict[str, Any]:
        from engine.trading.portfolio import snapshot_equity

        val = snapshot_equity(self.store, self.broker.mark_price, self.source.milliseconds(), self.settings.lifecycle)
        return {k: round(v["equity"], 2) for k, v in val.items()}

    def _monitors(self) -> dict[str, Any]:
        from engine.runtime.jobs import prune_job_runs

        out = self.monitors.run()
        out["job_runs_pruned"] = prune_job_runs(self.store)
        return out

    def _leaderboard(self) -> int:
        from engine.monitoring.leaderboard import compute_leaderboard, store_leaderboard

        board = compute_leaderboard(self.store, self.settings.lifecycle)
        store_leaderboard(self.store, board)
        return len(board)

    def _reconcile(self) -> Any:
        return self.broker.reconcile() if hasattr(self.broker, "reconcile") else {"mode": self.mode, "skipped": True}

    def _funding(self) -> Any:
        return self.broker.apply_funding() if hasattr(self.broker, "apply_funding") else None

    def _retrain(self, strategy: str) -> Any:
        from engine.ml.retrain import retrain_job

        return retrain_job(self.settings, strategy, self.store, source=self.source)

    def _retrain_now(self, strategy: str) -> str:
        from engine.runtime import jobs
        from engine.runtime.scheduler import add_one_off

        name = f"retrain:{strategy}"
        jobs.add_handler(name, lambda: self._retrain(strategy))
        add_one_off(self.scheduler, name)
        return f"retraining of {strategy} scheduled now"

    # --- operator actions (command poller thread) ----------------------------------------------------------------
    def _cancel_all(self, instance_id: str | None) -> int:
        """Cancel open orders; during start-up recovery does it (a HALTED desk cancels everything there)."""
        if not self.ready.is_set():
            return 0
        return int(self.broker.cancel_all(instance_id))

    def _flatten(self) -> dict[str, Any]:
        """Cancel every open order, then close every position with reduce-only market orders."""
        from engine.execution.orders import OrderRequest, client_order_id, load_positions
        from engine.risk.trading_state import TradingState, get_state, set_state

        if get_state(self.store).state is TradingState.ACTIVE:
            set_state(self.store, TradingState.REDUCING, "flatten: stay flat until an operator resumes", "engine")
        if not self.ready.wait(120):
            raise RuntimeError("flatten: the broker did not finish start-up recovery within 120s")
        canceled = self._cancel_all(None)
        closed = 0
        for attempt in range(3):
            pos = load_positions(self.store)
            if not pos:
                break
            stamp = now_ms()
            for p in pos:
                req = OrderRequest(instance_id=p["instance_id"], symbol=p["symbol"],
                                   side="sell" if p["qty"] > 0 else "buy", qty=abs(p["qty"]),
                                   client_order_id=client_order_id(p["instance_id"], p["symbol"], stamp,
                                                                   f"flatten{attempt}"),
                                   reduce_only=True, reason="operator flatten", intent="flatten")
                order = self.broker.submit(req)
                closed += int(order.get("status") == "filled")
            if hasattr(self.broker, "process"):
                self.broker.process()
        left = len(load_positions(self.store))
        try:
            self._equity()  # exposure on the desk and in `quantdesk status` drops now, not at the next snapshot
        except Exception:  # noqa: BLE001 - the flatten itself succeeded; the equity job will retry the snapshot
            log.exception("equity snapshot after flatten failed")
        return {"canceled": canceled, "closed": closed, "positions_left": left}
