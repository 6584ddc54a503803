"""Executing control commands: the state-only part (shared by engine and offline client) and the engine's poller.

The engine's `CommandProcessor` runs on its own thread, never behind scheduler jobs, polling `commands` every
`runtime.command_poll_ms`, or at once when a front end rings its doorbell (engine/control/doorbell.py). Broker
actions (cancel, flatten) reach the running engine through `EngineHooks`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from sqlalchemy import or_, select, update

from engine.config import LifecycleConfig
from engine.control import catalogue
from engine.control.catalogue import CommandError, CommandResult, EngineHooks, StateContext
from engine.control.command_rows import finish_command
from engine.control.doorbell import Doorbell, doorbell_address
from engine.store.db import Store
from engine.store.notify import enqueue_event
from engine.store.ops import ack_alert, audit, raise_alert
from engine.store.schema import commands

__all__ = ["CommandProcessor", "CommandResult", "EngineHooks", "execute_state_command"]
log = logging.getLogger("quantdesk.commands")


def execute_state_command(store: Store, cmd_id: int | None, command: str, args: Mapping[str, Any], source: str,
                          user: str, engine: bool, lifecycle_cfg: LifecycleConfig | None = None,
                          scope: str = "global") -> CommandResult:
    """Apply a command's persisted-state part (trading state, instance stage/status, models, alert ack).

    Unknown verbs and arguments that do not parse fail with the reason; a command with no state part (flatten,
    retrain, stop) fails with 'needs a running engine'."""
    try:
        parsed = catalogue.command(command).parse(dict(args))
    except CommandError as exc:
        return CommandResult(False, command, cmd_id, str(exc))
    ctx = StateContext(store, cmd_id, source, user, engine, lifecycle_cfg or LifecycleConfig(), scope)
    result = catalogue.run_state(ctx, command, parsed)
    if result is None:
        return CommandResult(False, command, cmd_id, f"command {command!r} needs a running engine")
    return result


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

    def __init__(self, store: Store, hooks: EngineHooks, poll_ms: int, lifecycle_cfg: LifecycleConfig,
                 name: str = "main") -> None:
        self.store = store
        self.name = name  # this engine's name: it consumes rows addressed to it or to no engine in particular
        self.mine = or_(commands.c.target.is_(None), commands.c.target == name)
        self.hooks = hooks
        self.poll_s = max(1, poll_ms) / 1000
        self.lifecycle_cfg = lifecycle_cfg
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.doorbell: Any = None  # Doorbell (Unix socket) or PgDoorbell (LISTEN/NOTIFY)
        self.polls = 0

    def recover_interrupted(self) -> dict[str, int]:
        """Commands left `running` by a killed engine: re-queue idempotent ones, fail the others (e.g. promote).

        Re-running a promote could move an instance two stages, so it fails with a pointer to the audit log."""
        with self.store.connect() as conn:
            rows = conn.execute(select(commands.c.id, commands.c.command).where(commands.c.status == "running",
                                                                                 self.mine)).all()
        requeued = failed = 0
        for cmd_id, command in rows:
            if command in catalogue.CATALOGUE and catalogue.CATALOGUE[command].idempotent:
                with self.store.begin() as conn:
                    conn.execute(update(commands).where(commands.c.id == cmd_id).values(status="pending"))
                requeued += 1
            else:
                why = ("the engine stopped while running this command; check the audit log before repeating it"
                       if command in catalogue.CATALOGUE else f"unknown command {command!r}")
                finish_command(self.store, cmd_id, CommandResult(False, command, cmd_id, why))
                failed += 1
        return {"requeued": requeued, "failed": failed}

    def start(self) -> None:
        """Bind the doorbell (front ends ring it after queuing a command), then start the poller thread."""
        if self.store.engine.dialect.name == "postgresql":  # front ends on other hosts ring through the database
            from engine.control.doorbell_pg import PgDoorbell

            self.doorbell = PgDoorbell(self.store.url, self._stop)
        else:
            self.doorbell = Doorbell(doorbell_address(self.store, self.name), self._stop)
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
                self.polls += 1  # completed polls: tests wait on this instead of sleeping
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
            rows = conn.execute(select(commands).where(commands.c.status == "pending", self.mine)
                                .order_by(commands.c.id)).mappings().all()
        for row in rows:
            with self.store.begin() as conn:
                claimed = conn.execute(update(commands).where(commands.c.id == row["id"],
                                                              commands.c.status == "pending")
                                       .values(status="running")).rowcount
            if not claimed:
                continue
            try:  # arguments are parsed here, inside the guard: a bad row ends failed, never stays 'running'
                result = self.execute(row["id"], row["command"], row["args"], row["source"], row["user"],
                                      row.get("scope") or "global")
            except CommandError as exc:
                result = CommandResult(False, row["command"], row["id"], str(exc))
            except Exception as exc:  # noqa: BLE001 - a failing command is a failed result, not a dead poller
                log.exception("command %s failed", row["command"])
                result = CommandResult(False, row["command"], row["id"], f"{type(exc).__name__}: {exc}")
            finish_command(self.store, row["id"], result)
            if row["command"] in NOTIFY_RESULT:
                _notify_result(self.store, row["command"], row["source"], row["user"], result)
            audit(self.store, "engine", f"command.{row['command']}.{'done' if result.ok else 'failed'}",
                  {"command_id": row["id"], "requested_by": row["source"], "message": result.message,
                   "engine": self.name,
                   **{k: v for k, v in result.data.items() if isinstance(v, (int, float, str, bool))}},
                  user=row["user"])
            log.info("command %s #%s from %s/%s -> %s", row["command"], row["id"], row["source"], row["user"],
                     result.message)
        return len(rows)

    def execute(self, cmd_id: int, command: str, args: Any, source: str, user: str,
                scope: str = "global") -> CommandResult:
        """Run one command from the catalogue: persisted part first (HALTED before any cancel), then the broker part.

        `args` is the row's JSON text or a mapping; CommandError when the verb is unknown or they do not parse."""
        spec = catalogue.command(command)
        parsed = spec.parse(args if isinstance(args, (str, bytes)) or args is None else dict(args))
        prior = catalogue.run_state(StateContext(self.store, cmd_id, source, user, True, self.lifecycle_cfg, scope),
                                    command, parsed)
        if (prior is not None and not prior.ok) or spec.engine is None:
            assert prior is not None  # every command has a state part, an engine part or both
            return prior
        return spec.engine(self.hooks, cmd_id, parsed, prior)
