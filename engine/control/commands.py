"""Executing control commands: the state-only part (shared by engine and offline client) and the engine's poller.

The engine's `CommandProcessor` runs on its own thread, never behind scheduler jobs, polling `commands` every
`runtime.command_poll_ms`, or at once when a front end rings its doorbell (engine/control/doorbell.py). Broker
actions (cancel, flatten) reach the running engine through `EngineHooks`.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import select, update

from engine.config import LifecycleConfig
from engine.risk.trading_state import TradingState, TransitionError, get_state, set_state
from engine.trading import lifecycle
from engine.control.client import CommandResult, finish_command
from engine.control.doorbell import Doorbell, doorbell_address
from engine.store.db import Store
from engine.store.notify import enqueue_event
from engine.store.ops import ack_alert, audit, raise_alert
from engine.store.schema import commands

log = logging.getLogger("quantdesk.commands")
# Safe to run twice (the end state is the same): re-queued when an engine died while running them.
IDEMPOTENT = frozenset({"halt", "flatten", "emergency_stop", "reduce", "resume", "pause_strategy", "resume_strategy",
                        "ack_alert", "retrain_now", "stop"})


@dataclass
class EngineHooks:
    """What a running engine lets commands do besides changing persisted state."""

    cancel_all: Callable[[str | None], int]  # instance id or None -> number canceled
    flatten: Callable[[], dict[str, Any]]
    retrain: Callable[[str], str]
    stop: Callable[[], None]


def execute_state_command(store: Store, cmd_id: int, command: str, args: Mapping[str, Any], source: str, user: str,
                          engine: bool, lifecycle_cfg: LifecycleConfig | None = None) -> CommandResult:
    """Apply a command's persisted-state part (trading state, instance stage/status, alert ack)."""
    cfg = lifecycle_cfg or LifecycleConfig()
    try:
        if command in ("halt", "emergency_stop") and get_state(store).state is TradingState.HALTED and engine:
            return CommandResult(True, command, cmd_id, "HALTED (set by the front end)", {"state": "HALTED"})
        if command in ("halt", "emergency_stop"):
            ch = set_state(store, TradingState.HALTED, str(args.get("reason", command)), source, user)
            return CommandResult(True, command, cmd_id, f"HALTED ({ch.previous.value} -> HALTED)"
                                 + ("" if engine else "; no engine running, state persisted"),
                                 {"state": "HALTED", "previous": ch.previous.value})
        if command == "reduce":
            ch = set_state(store, TradingState.REDUCING, str(args.get("reason", "reduce")), source, user)
            return CommandResult(True, command, cmd_id, f"{ch.current.value} ({ch.previous.value} -> REDUCING)",
                                 {"state": ch.current.value})
        if command == "resume":
            ch = set_state(store, TradingState.ACTIVE, "operator resume", source, user,
                           confirmed=bool(args.get("confirm")))
            return CommandResult(True, command, cmd_id, f"ACTIVE ({ch.previous.value} -> ACTIVE)", {"state": "ACTIVE"})
        if command in ("pause_strategy", "resume_strategy"):
            inst = lifecycle.set_status(store, str(args["instance_id"]),
                                        "paused" if command == "pause_strategy" else "running", source, user)
            return CommandResult(True, command, cmd_id, f"{inst.id} {inst.status}", {"instance_id": inst.id,
                                                                                       "status": inst.status})
        if command == "promote":
            rep = lifecycle.promote(store, str(args["instance_id"]), cfg, bool(args.get("confirm")), source, user)
            return CommandResult(True, command, cmd_id, f"{rep.instance_id} promoted {rep.from_stage} -> "
                                 f"{rep.to_stage}", {"to_stage": rep.to_stage,
                                                     "checks": [c.__dict__ for c in rep.checks]})
        if command == "demote":
            inst = lifecycle.demote(store, str(args["instance_id"]), str(args.get("reason", "")), source, user)
            return CommandResult(True, command, cmd_id, f"{inst.id} demoted to {inst.stage}", {"stage": inst.stage})
        if command == "rollback_model":
            from engine.ml.registry import ModelIntegrityError, ModelRegistry

            # artefact paths are stored absolute; models_dir only matters for saving, which rollback never does
            registry = ModelRegistry(store, store.path.parent / "models" if store.path else "models")
            try:
                model = registry.rollback(str(args["strategy"]), source=source, user=user)
            except ModelIntegrityError as exc:
                return CommandResult(False, command, cmd_id, str(exc))
            return CommandResult(True, command, cmd_id, f"{args['strategy']}: champion is now v{model.version}",
                                 {"strategy": str(args["strategy"]), "version": model.version})
        if command == "ack_alert":
            done = ack_alert(store, int(args["alert_id"]), user, source=source)
            return CommandResult(done, command, cmd_id, "acknowledged" if done else
                                 f"alert {args['alert_id']} does not exist or is already acknowledged")
    except (TransitionError, lifecycle.LifecycleError, KeyError, ValueError) as exc:
        return CommandResult(False, command, cmd_id, str(exc))
    return CommandResult(False, command, cmd_id, f"command {command!r} needs a running engine")


NOTIFY_RESULT = frozenset({"halt", "flatten", "emergency_stop"})  # their outcome goes off-box with the result


def _notify_result(store: Store, command: str, source: str, user: str, result: CommandResult) -> None:
    """Queue the off-box notice of an emergency stop / flatten / halt with what the broker did."""
    left = int(result.data.get("positions_left", 0) or 0)
    severity = "critical" if (not result.ok or left) else "warning"
    details = ", ".join(f"{k}={v}" for k, v in result.data.items() if isinstance(v, (int, float, str, bool)))
    with store.begin() as conn:
        enqueue_event(conn, "flatten" if command != "halt" else "halt", severity,
                      f"[{severity.upper()}] {command} {'done' if result.ok else 'FAILED'} (by {source}/{user})",
                      f"{result.message}" + (f"\n{details}" if details else ""), dict(result.data),
                      rule=f"command.{command}")


class CommandProcessor:
    """Polls the commands table and executes each pending command once, in id order."""

    def __init__(self, store: Store, hooks: EngineHooks, poll_ms: int, lifecycle_cfg: LifecycleConfig) -> None:
        self.store = store
        self.hooks = hooks
        self.poll_s = max(1, poll_ms) / 1000
        self.lifecycle_cfg = lifecycle_cfg
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.doorbell: Doorbell | None = None

    def recover_interrupted(self) -> dict[str, int]:
        """Commands left `running` by a killed engine: re-queue idempotent ones, fail the others (e.g. promote).

        Re-running a promote could move an instance two stages, so it fails with a pointer to the audit log."""
        from engine.control.client import CommandResult as Result

        with self.store.connect() as conn:
            rows = conn.execute(select(commands.c.id, commands.c.command).where(commands.c.status == "running")
                                ).all()
        requeued = failed = 0
        for cmd_id, command in rows:
            if command in IDEMPOTENT:
                with self.store.begin() as conn:
                    conn.execute(update(commands).where(commands.c.id == cmd_id).values(status="pending"))
                requeued += 1
            else:
                finish_command(self.store, cmd_id, Result(False, command, cmd_id, "the engine stopped while running "
                                                          "this command; check the audit log before repeating it"))
                failed += 1
        return {"requeued": requeued, "failed": failed}

    def start(self) -> None:
        """Bind the doorbell (front ends ring it after queuing a command), then start the poller thread."""
        self.doorbell = Doorbell(doorbell_address(self.store), self._stop)
        self._thread = threading.Thread(target=self._run, name="command-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the poller and wait for it."""
        self._stop.set()
        if self.doorbell is not None:
            self.doorbell.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.doorbell is not None:
            self.doorbell.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the poller must survive anything
                log.exception("command poll failed")
                try:
                    raise_alert(self.store, "warning", "control.poll_error", f"command poll failed: {exc}")
                except Exception:  # noqa: BLE001
                    log.exception("could not record poll alert")
                self._stop.wait(1.0)
            if self._stop.is_set():
                break
            if self.doorbell is not None:
                self.doorbell.wait(self.poll_s)  # a ring (a command was just queued) ends the wait at once
            else:
                self._stop.wait(self.poll_s)

    def poll_once(self) -> int:
        """Execute every pending command; returns how many ran."""
        with self.store.connect() as conn:
            rows = conn.execute(select(commands).where(commands.c.status == "pending")
                                .order_by(commands.c.id)).mappings().all()
        for row in rows:
            with self.store.begin() as conn:
                claimed = conn.execute(update(commands).where(commands.c.id == row["id"],
                                                              commands.c.status == "pending")
                                       .values(status="running")).rowcount
            if not claimed:
                continue
            args = json.loads(row["args"] or "{}")
            try:
                result = self.execute(row["id"], row["command"], args, row["source"], row["user"])
            except Exception as exc:  # noqa: BLE001 - a failing command is a failed result, not a dead poller
                log.exception("command %s failed", row["command"])
                result = CommandResult(False, row["command"], row["id"], f"{type(exc).__name__}: {exc}")
            finish_command(self.store, row["id"], result)
            if row["command"] in NOTIFY_RESULT:
                _notify_result(self.store, row["command"], row["source"], row["user"], result)
            audit(self.store, "engine", f"command.{row['command']}.{'done' if result.ok else 'failed'}",
                  {"command_id": row["id"], "requested_by": row["source"], "message": result.message,
                   **{k: v for k, v in result.data.items() if isinstance(v, (int, float, str, bool))}},
                  user=row["user"])
            log.info("command %s #%s from %s/%s -> %s", row["command"], row["id"], row["source"], row["user"],
                     result.message)
        return len(rows)

    def execute(self, cmd_id: int, command: str, args: Mapping[str, Any], source: str, user: str) -> CommandResult:
        """Run one command: persisted part first (HALTED before any cancel), then the broker part."""
        if command == "flatten":
            summary = self.hooks.flatten()
            return CommandResult(True, command, cmd_id, f"flatten: canceled {summary.get('canceled', 0)} orders, "
                                 f"closed {summary.get('closed', 0)} positions", summary)
        if command == "retrain_now":
            return CommandResult(True, command, cmd_id, self.hooks.retrain(str(args["strategy"])))
        if command == "stop":
            self.hooks.stop()
            return CommandResult(True, command, cmd_id, "engine stopping")
        result = execute_state_command(self.store, cmd_id, command, args, source, user, engine=True,
                                       lifecycle_cfg=self.lifecycle_cfg)
        if not result.ok:
            return result
        data = dict(result.data)
        if command == "halt":
            data["canceled"] = self.hooks.cancel_all(None)
            return CommandResult(True, command, cmd_id, f"{result.message}; canceled {data['canceled']} open orders",
                                 data)
        if command == "emergency_stop":
            data.update(self.hooks.flatten())
            return CommandResult(True, command, cmd_id, f"{result.message}; canceled {data.get('canceled', 0)} "
                                 f"orders, closed {data.get('closed', 0)} positions", data)
        if command == "pause_strategy":
            data["canceled"] = self.hooks.cancel_all(str(args["instance_id"]))
        return CommandResult(True, command, cmd_id, result.message, data)
