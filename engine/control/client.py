"""The UI-neutral control API: front ends (console, CLI) send commands to the engine through state.db.

Transport choice: the `commands` table, polled by the engine every `runtime.command_poll_ms` on its own thread. It
survives an engine restart (a queued FLATTEN runs at the next start), is audited in the same database, and works on
PostgreSQL. After queuing, the client rings the engine's doorbell (engine/control/doorbell.py, a datagram that only
ends the poller's wait), so a command is claimed in milliseconds; without it the next poll still finds the command.

`ControlClient` writes a command row, waits for the engine's result and returns a typed `CommandResult`. When no
engine is alive, commands that only change persisted state (halt, reduce, resume, strategy pause/resume/promote/
demote, alert ack) are applied directly to state.db so the desk can always be stopped; commands that need a broker
(flatten) stay queued for the engine's next start and the result says so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import select

from engine.clock import now_ms
from engine.config import LifecycleConfig, Settings
from engine.store.db import Store, open_existing, open_store
from engine.store.ops import current_user
from engine.store.schema import commands, engine_status
from engine.control.catalogue import CATALOGUE, CommandResult, command as catalogue_entry
from engine.control.command_rows import (  # re-exported: front ends and tests import them from here
    CLAIM_POLL_S, CLAIM_WINDOW_S, cancel_pending, finish_command, submit_command, wait_result,
)
from engine.control.doorbell import doorbell_address, ring
from engine.control.snapshots import StatusSnapshot
from engine.control.liveness import engine_alive
from engine.control.views import status_view

SOURCES = ("console", "cli")
COMMANDS = tuple(CATALOGUE)
Progress = Callable[[str], None]  # called with 'persisted' / 'claimed' as a command advances


@dataclass(frozen=True)
class EngineStatus:
    """`quantdesk status`'s view of the desk: a StatusSnapshot (engine/control/views.py) under the CLI's names."""

    trading_state: str
    reason: str
    mode: str  # paper | live | unknown (no engine ever ran)
    engine_alive: bool
    pid: int | None
    equity: float | None
    day_pnl: float | None
    drawdown: float | None  # fraction below the equity peak, >= 0
    gross_exposure: float | None
    net_exposure: float | None
    open_orders: int
    open_positions: int
    heartbeat_at: int | None
    started_at: int | None
    state_changed_at: int
    state_changed_by: str

    @classmethod
    def from_snapshot(cls, snap: StatusSnapshot) -> "EngineStatus":
        """The same numbers as the console header's StatusSnapshot, named for the CLI's JSON."""
        return cls(trading_state=snap.state, reason=snap.reason, mode=snap.mode, engine_alive=snap.engine_alive,
                   pid=snap.engine_pid, equity=snap.equity, day_pnl=snap.day_pnl, drawdown=snap.drawdown,
                   gross_exposure=snap.gross_exposure, net_exposure=snap.net_exposure, open_orders=snap.open_orders,
                   open_positions=snap.positions, heartbeat_at=snap.heartbeat_at, started_at=snap.started_at,
                   state_changed_at=snap.changed_at, state_changed_by=snap.changed_by)


def engine_row(store: Store) -> Mapping[str, Any] | None:
    """The engine_status row (id 1), or None when no engine has ever started on this store."""
    with store.connect() as conn:
        return conn.execute(select(engine_status).where(engine_status.c.id == 1)).mappings().first()


def is_engine_alive(store: Store, heartbeat_timeout_s: float = 5.0) -> bool:
    """True when the engine's heartbeat is fresh and (on this host) its process still exists (views.engine_alive)."""
    row = engine_row(store)
    if row is None:
        return False
    stopped = bool(json.loads(row["info"] or "{}").get("stopped", False))
    return engine_alive(int(row["pid"]), row["host"], row["heartbeat_at"], stopped, now_ms(),
                        int(heartbeat_timeout_s * 1000))


class ControlClient:
    """Send commands to the engine via state.db and read the desk's status; one instance per front end."""

    def __init__(self, store_path_or_url: str | os.PathLike[str] | Store, source: str, user: str | None = None,
                 timeout_s: float = 5.0, heartbeat_timeout_s: float = 5.0, poll_s: float = 0.005,
                 lifecycle: LifecycleConfig | None = None, engine: str | None = None) -> None:
        if source not in SOURCES:
            raise ValueError(f"source: must be one of {SOURCES}, got {source!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be positive, got {timeout_s!r}")
        self.store = store_path_or_url if isinstance(store_path_or_url, Store) else open_store(
            store_path_or_url)
        self.source = source
        self.user = user or current_user()
        self.timeout_s = timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.poll_s = poll_s
        self.lifecycle = lifecycle  # LifecycleConfig for offline promotion gates; None means defaults
        self.doorbell = doorbell_address(self.store)
        self.engine = engine  # --engine NAME: commands go to that engine only (None: the desk, every engine)

    @classmethod
    def from_settings(cls, settings: Settings, source: str, **overrides: Any) -> "ControlClient":
        """The one way a front end builds its client: the configured store, heartbeat timeout, command timeout and
        lifecycle gates (so an offline promotion checks the same gates whichever front end sends it)."""
        kwargs: dict[str, Any] = dict(timeout_s=max(2.0, settings.execution.order_timeout_s),
                                      heartbeat_timeout_s=settings.runtime.heartbeat_timeout_s,
                                      lifecycle=settings.lifecycle)
        kwargs.update(overrides)
        # a front end never creates an empty desk: a missing store is a StoreError naming it
        store = open_existing(settings.store_url(), busy_timeout_ms=settings.store.busy_timeout_ms)
        return cls(store, source=source, **kwargs)

    # --- commands ------------------------------------------------------------------------------------------------
    def halt(self, reason: str = "operator halt", progress: Progress | None = None) -> CommandResult:
        """HALT: no new orders, cancel open orders. Persisted directly when no engine is alive."""
        return self._send("halt", {"reason": reason}, progress)

    def flatten(self) -> CommandResult:
        """Cancel all open orders and close all positions with reduce-only orders (queued if no engine)."""
        return self._send("flatten", {})

    def emergency_stop(self, reason: str = "emergency stop", progress: Progress | None = None) -> CommandResult:
        """HALT + FLATTEN in one command: the console's one-key stop (progress: 'persisted', then 'claimed')."""
        return self._send("emergency_stop", {"reason": reason}, progress)

    def reduce(self, reason: str = "operator reduce") -> CommandResult:
        """Move to REDUCING: only exposure-reducing orders pass."""
        return self._send("reduce", {"reason": reason})

    def resume(self, confirm: bool) -> CommandResult:
        """Back to ACTIVE; from HALTED this needs confirm=True (the state machine enforces it)."""
        return self._send("resume", {"confirm": bool(confirm)})

    def pause_strategy(self, instance_id: str) -> CommandResult:
        """Pause one strategy instance: it stops ticking and its open orders are canceled."""
        return self._send("pause_strategy", {"instance_id": instance_id})

    def resume_strategy(self, instance_id: str) -> CommandResult:
        """Resume a paused strategy instance."""
        return self._send("resume_strategy", {"instance_id": instance_id})

    def promote(self, instance_id: str, confirm: bool) -> CommandResult:
        """Promote an instance one stage if the configured gates pass; needs operator confirmation."""
        return self._send("promote", {"instance_id": instance_id, "confirm": bool(confirm)})

    def demote(self, instance_id: str, reason: str = "operator demote") -> CommandResult:
        """Demote an instance one stage."""
        return self._send("demote", {"instance_id": instance_id, "reason": reason})

    def rollback_model(self, strategy: str) -> CommandResult:
        """Reinstate a strategy's previous champion meta-model; the current one is marked rejected (audited)."""
        return self._send("rollback_model", {"strategy": strategy})

    def promote_model(self, strategy: str, version: int) -> CommandResult:
        """Make a saved meta-model version the champion (verified first; a bad file is refused, audited)."""
        return self._send("promote_model", {"strategy": strategy, "version": int(version)})

    def retrain_now(self, strategy: str) -> CommandResult:
        """Ask the engine to run the retraining job for a strategy now (queued if no engine)."""
        return self._send("retrain_now", {"strategy": strategy})

    def ack_alert(self, alert_id: int) -> CommandResult:
        """Acknowledge an alert (recorded with user and source)."""
        return self._send("ack_alert", {"alert_id": int(alert_id)})

    def stop_engine(self) -> CommandResult:
        """Ask the engine to shut down gracefully."""
        return self._send("stop", {})

    # --- status --------------------------------------------------------------------------------------------------
    def engine_alive(self, name: str | None = None) -> bool:
        """True when engine `name`'s heartbeat on this store is fresh (None: the desk's main engine, row id 1)."""
        if name is None:
            return is_engine_alive(self.store, self.heartbeat_timeout_s)
        from engine.control.engines import named_engine_alive

        return named_engine_alive(self.store, name, self.heartbeat_timeout_s)

    def _alive(self, name: str | None) -> bool:
        """engine_alive for a command's target (the no-argument call for the desk's one engine, as ever)."""
        return self.engine_alive() if name is None else self.engine_alive(name)

    def ring(self, name: str | None) -> bool:
        """Ring engine `name`'s doorbell (None: main's, the desk's one engine as it always was)."""
        return ring(self.doorbell if name in (None, "main") else doorbell_address(self.store, name))

    def status(self) -> EngineStatus:
        """Trading state, engine liveness, equity, P&L, drawdown, exposure and counts, from state.db."""
        return read_status(self.store, self.heartbeat_timeout_s)

    # --- plumbing ------------------------------------------------------------------------------------------------
    def _send(self, command: str, args: dict[str, Any], progress: Progress | None = None) -> CommandResult:
        """Queue a command for the engine(s) it concerns and wait for the result (engine/control/routing.py): one
        engine named by `--engine`, the owner of an instance, every engine of a several-engine desk for the
        commands each must run (halt, emergency stop, flatten, stop), or whichever engine runs otherwise."""
        from engine.control.routing import route, send_to_all

        spec = catalogue_entry(command)
        args = spec.parse(args)  # a bad argument fails here, before anything is written
        routed = route(self, command, spec, args)
        if isinstance(routed, CommandResult):
            return routed
        targets, scope = routed
        if len(targets) > 1:
            return send_to_all(self, command, spec, args, targets, progress)
        return self._send_to(command, args, progress, targets[0] if targets else None, scope)

    def _send_to(self, command: str, args: dict[str, Any], progress: Progress | None, target: str | None,
                 scope: str = "global") -> CommandResult:
        """Queue a command for engine `target` (None: whichever runs), wait for the engine's result; apply it
        directly when no engine is alive. `scope` is the trading-state scope a tightening command persists.

        `progress(stage)` is called on this thread as the command advances: 'persisted' once a tightening
        command's state is in state.db, 'claimed' once the running engine has taken the command (before its
        result, which for a FLATTEN waits for the cancels and closes)."""
        t0 = time.perf_counter()
        spec = catalogue_entry(command)
        state_ms = None
        if not spec.tightening:
            alive = self._alive(target)
            if not alive and spec.offline:
                return self._apply_offline(command, args, target, scope)
        else:
            # Safety first: the stop takes effect in state.db before the engine even sees the command (brokers read
            # the state before every order), so HALTED never waits behind a busy engine. The engine then cancels.
            from engine.risk.trading_state import TradingState, TransitionError, get_state, set_state

            prior = get_state(self.store, scope)
            if command == "reduce" and prior.state is TradingState.REDUCING:  # nothing to persist, nothing to queue
                from engine.control.catalogue import already_in_state

                cmd_id = submit_command(self.store, command, args, self.source, self.user, status="running",
                                        target=target, scope=scope)
                result = already_in_state(prior, command, cmd_id)
                finish_command(self.store, cmd_id, result)
                return result
            try:
                set_state(self.store, TradingState.REDUCING if command == "reduce" else TradingState.HALTED,
                          str(args.get("reason", command)), self.source, self.user, scope=scope)
            except TransitionError as exc:
                return CommandResult(False, command, None, str(exc))
            state_ms = (time.perf_counter() - t0) * 1000
            if progress is not None:
                progress("persisted")
            alive = self._alive(target)  # asked only after the stop is in state.db: nothing delays HALTED
            if not alive and spec.offline:  # halt / reduce: the state change was the whole command
                to = "REDUCING" if command == "reduce" else "HALTED"
                cmd_id = submit_command(self.store, command, args, self.source, self.user, status="running",
                                        target=target, scope=scope)
                result = CommandResult(True, command, cmd_id, f"{to}; no engine running, state persisted",
                                       {"state": to, "state_persisted_ms": round(state_ms, 2)})
                finish_command(self.store, cmd_id, result)
                return result
        cmd_id = submit_command(self.store, command, args, self.source, self.user, target=target, scope=scope)
        if alive:
            self.ring(target)  # wake the engine's poller now rather than at its next poll
        if not alive:
            done = "HALTED persisted; " if state_ms is not None else ""
            return CommandResult(True, command, cmd_id, f"{done}no engine is running: {command} is queued and runs "
                                 "at the engine's next start", {"queued": True})
        claimed = (lambda: progress("claimed")) if progress is not None else None
        result = wait_result(self.store, cmd_id, self.timeout_s, self.poll_s, on_claimed=claimed)
        if result is not None:
            if state_ms is not None:
                result.data["state_persisted_ms"] = round(state_ms, 2)
            return result
        if spec.offline and not self._alive(target):
            cancel_pending(self.store, cmd_id)
            return self._apply_offline(command, args, target, scope)
        if state_ms is not None:
            return CommandResult(True, command, cmd_id, f"{'REDUCING' if command == 'reduce' else 'HALTED'} persisted;"
                                 f" the engine did not confirm its cancels within {self.timeout_s:.1f}s (queued)",
                                 {"queued": True, "state_persisted_ms": round(state_ms, 2)})
        return CommandResult(False, command, cmd_id, f"engine did not answer within {self.timeout_s:.1f}s; "
                             "the command stays queued", {"queued": True})

    def _apply_offline(self, command: str, args: dict[str, Any], target: str | None = None,
                       scope: str = "global") -> CommandResult:
        """Run a state-only command here, audited with this front end's source and user."""
        from engine.control.commands import execute_state_command

        cmd_id = submit_command(self.store, command, args, self.source, self.user, status="running", target=target,
                                scope=scope)
        result = execute_state_command(self.store, cmd_id, command, args, self.source, self.user, engine=False,
                                       lifecycle_cfg=self.lifecycle, scope=scope)
        finish_command(self.store, cmd_id, result)
        return result


def read_status(store: Store, heartbeat_timeout_s: float = 5.0) -> EngineStatus:
    """The desk's status for `quantdesk status`: the read model's status_view, in the CLI's field names."""
    with store.connect() as conn:
        snap = status_view(conn, now_ms(), int(heartbeat_timeout_s * 1000))
    return EngineStatus.from_snapshot(snap)
