"""The engine's scheduled jobs: what each APScheduler job name runs (pulls, ticks, equity, monitors, leaderboard,
storage, backup, reconcile, funding, retraining), as a mixin of EngineService (engine/runtime/service.py).

Every handler works on the service's one store, source, broker and trader; the service builds them at start.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from engine.clock import now_ms
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.engine")


class JobHandlers:
    """Job handlers of the engine process; mixed into EngineService, which provides the attributes used here."""

    settings: Any
    store: Any
    source: Any
    broker: Any
    trader: Any
    monitors: Any
    scheduler: Any
    mode: str

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
        if kind == "reopt":
            return lambda: self._reopt(rest)
        table = {"broker": self.broker.process, "equity": self._equity, "monitors": self._monitors,
                 "leaderboard": self._leaderboard, "reconcile": self._reconcile, "funding": self._funding,
                 "pull-feeds": self._pull_feeds, "pull-funding": self._pull_funding, "backup": self._backup,
                 "retention": self._retention}
        if kind not in table:
            raise ValueError(f"job {name!r}: unknown job kind {kind!r}")
        return table[kind]

    def _pull(self, symbol: str, timeframe: str, warmup: bool = False, force: bool = False) -> dict[str, Any]:
        from engine.data.pulls import pull_candles
        from engine.trading.warmup import warmup_bars

        streams = getattr(self, "streams", None)
        if not (warmup or force) and streams is not None and streams.healthy("ohlcv", symbol, timeframe):
            return {"skipped": "streaming"}  # REST polling is the fallback while the stream is down
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

        from engine.execution.router import venue_for

        inst = get_instance(self.store, inst_id)
        if inst.status != "running" or inst.stage == "research":
            return {"skipped": inst.status if inst.status != "running" else "research stage"}
        if venue_for(inst.stage, self.mode == "live") is None:
            return {"skipped": f"stage {inst.stage} trades only in an engine started with --live"}
        if get_state(self.store).state is TradingState.HALTED:
            return {"skipped": "HALTED"}
        exits = self.trader.check_stops(inst)  # paper: a strategy stop hit inside a closed 1m bar, between ticks
        if not self.trader.due(inst):
            return {"protective_exits": exits} if exits else None
        bar = self.trader.last_closed_bar(inst)
        if not self.trader.bar_stored(inst, bar):  # the bar just closed: pull it now rather than wait for a pull job
            for symbol in inst.symbols:
                self._pull(symbol, inst.timeframe, force=True)  # the stream is late: REST now
        capital = inst.effective_capital(self.settings.lifecycle)
        self.broker.set_capital_cap(inst.id, capital)  # the cap follows the stage (live-small: a fraction)
        settled = self._settle_venue(inst)
        if settled:
            return {"settling": settled}
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

    def _storage_alert(self, line: str) -> None:
        """A storage fault's critical alert: straight to every alert channel (their outbox lives in the broken
        store), then the alerts table if it still takes the write."""
        for channel in getattr(self.alerting, "channels", []):
            try:
                channel.send("quantdesk: storage fault, trading HALTED", line, "critical")
            except Exception as exc:  # noqa: BLE001 - every other channel still gets its chance
                log.critical("storage fault: alert channel failed: %s", exc)
        raise_alert(self.store, "critical", "store.fault", line, {})

    def _retention(self) -> dict[str, Any]:
        from engine.store.retention import apply_retention

        if not self._desk_duty("retention", self.settings.retention.interval_hours):
            return {"skipped": "another engine of the desk ran it"}
        return apply_retention(self.store, self.settings.retention, now_ms())

    def _backup(self) -> dict[str, Any]:
        from engine.store.backup import scheduled_backup

        cfg = self.settings.store
        if not self._desk_duty("backup", cfg.backup_interval_hours):
            return {"skipped": "another engine of the desk ran it"}
        return dict(scheduled_backup(self.store.url, cfg.backup_dir, cfg.backup_keep))

    def _desk_duty(self, name: str, every_hours: float) -> bool:
        """True when this engine runs desk-wide duty `name` this time (one engine per desk and interval)."""
        from engine.store.duties import claim_duty

        return claim_duty(self.store, name, self.name, int(every_hours * 3_600_000), now_ms())

    def _reconcile(self) -> Any:
        return self.broker.reconcile()

    def _funding(self) -> Any:
        return self.broker.apply_funding()

    def _settle_venue(self, inst: Any) -> str:
        """Close what an instance still holds on a venue it no longer trades on (promotion/demotion across venues)."""
        from engine.execution.flatten import settle_venue
        from engine.execution.router import venue_for

        ex = self.settings.execution
        return settle_venue(self.store, self.broker.brokers, inst.id, venue_for(inst.stage, self.mode == "live"),
                            max_rounds=ex.flatten_max_rounds, round_wait_s=ex.flatten_round_wait_s)

    def _retrain(self, strategy: str) -> Any:
        """Retrain in a child process on the engine's market time (engine/runtime/child_jobs.py: the engine must not
        keep a retrain's memory)."""
        from engine.runtime.child_jobs import retrain_in_child

        return retrain_in_child(self.settings, strategy, int(self.source.milliseconds()), self.store)

    def _retrain_now(self, strategy: str) -> str:
        from engine.runtime import jobs
        from engine.runtime.scheduler import add_one_off

        name = f"retrain:{strategy}"
        jobs.add_handler(name, lambda: self._retrain(strategy))
        add_one_off(self.scheduler, name)
        return f"retraining of {strategy} scheduled now"

    def _reopt(self, inst_id: str) -> dict[str, Any]:
        """Retire this champion's losing challengers (tick job removed, positions closed), then re-optimise it; a new
        challenger gets its tick job now."""
        from engine.runtime import jobs
        from engine.runtime.scheduler import add_interval_job, engine_speed, remove_job, tick_interval
        from engine.runtime.child_jobs import reoptimize_in_child
        from engine.trading.reoptimize import retire_losers

        from engine.execution.flatten import settle_venue

        retired = retire_losers(self.store, self.settings, inst_id)
        closed = {}
        ex = self.settings.execution
        for ch_id in retired:
            remove_job(self.scheduler, f"tick:{ch_id}")
            # a retired challenger trades nowhere: close what it still holds (venue None)
            closed[ch_id] = settle_venue(self.store, self.broker.brokers, ch_id, None,
                                         max_rounds=ex.flatten_max_rounds, round_wait_s=ex.flatten_round_wait_s)
        # the walk-forward runs in a child process: the engine must not keep its memory (engine/runtime/child_jobs.py)
        decision = reoptimize_in_child(self.settings, inst_id, self.source.id, int(self.source.milliseconds()))
        if decision.challenger_id is not None:
            name = f"tick:{decision.challenger_id}"
            jobs.add_handler(name, self._handler(name))
            tf = self.settings.strategies[inst_id].timeframe
            # not from this job's own executor thread: APScheduler's job-store lock is held by the scheduler loop
            # while it waits on this executor, so adding here deadlocks (seen in tests); a short helper thread does it
            threading.Thread(target=add_interval_job, name=f"add-{name}", daemon=True,
                             args=(self.scheduler, name, tick_interval(tf, engine_speed(self.settings)))).start()
        return {**decision.summary(), "retired": retired, "closed": closed}
