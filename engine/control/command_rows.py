"""Command rows in the `commands` table: queuing one (with its audit entry and, on PostgreSQL, its NOTIFY), waiting
for its result, and writing its outcome. Shared by the control client, the multi-engine router and the engine's
command processor, so none of them imports another for it."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping

from sqlalchemy import insert, select, text

from engine.clock import now_ms
from engine.control.catalogue import CommandResult, command as catalogue_entry
from engine.store.db import Store
from engine.store.ops import audit
from engine.store.schema import commands

CLAIM_POLL_S = 0.004  # how often a waiting client looks whether the engine has taken its command yet ...
CLAIM_WINDOW_S = 0.3  # ... during this long after queuing it (a doorbell-woken engine claims within milliseconds)


def finish_command(store: Store, cmd_id: int, result: CommandResult) -> None:
    """Write a command's result and final status."""
    payload = json.dumps({"ok": result.ok, "message": result.message, "data": result.data}, default=str)
    with store.begin() as conn:
        conn.execute(commands.update().where(commands.c.id == cmd_id).values(
            status="done" if result.ok else "failed", result=payload, done_at=now_ms()))


def submit_command(store: Store, command: str, args: Mapping[str, Any], source: str, user: str,
                   status: str = "pending", target: str | None = None, scope: str = "global") -> int:
    """Insert a command row and audit its submission; returns the command id (CommandError for unknown verbs).

    `target` names the engine that consumes it (None: whichever runs); `scope` the trading-state scope it moves."""
    catalogue_entry(command)
    with store.begin() as conn:
        cmd_id = int(conn.execute(insert(commands).values(
            created_at=now_ms(), source=source, user=user, command=command, args=json.dumps(dict(args)),
            status=status, target=target, scope=scope)).inserted_primary_key[0])
        extra = {} if target is None else {"engine": target, "scope": scope}
        audit(conn, source, f"command.{command}", {"command_id": cmd_id, **dict(args), **extra}, user=user)
        if status == "pending" and conn.dialect.name == "postgresql":  # delivered at commit, with the row
            from engine.control.doorbell_pg import COMMANDS_CHANNEL

            conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": COMMANDS_CHANNEL,
                                                                         "payload": str(cmd_id)})
    return cmd_id


def cancel_pending(store: Store, cmd_id: int) -> None:
    """Mark a still-pending command as superseded (applied directly by the client instead)."""
    with store.begin() as conn:
        conn.execute(commands.update().where(commands.c.id == cmd_id, commands.c.status == "pending").values(
            status="failed", result=json.dumps({"ok": False, "message": "engine gone; applied by the client"}),
            done_at=now_ms()))


def wait_result(store: Store, cmd_id: int, timeout_s: float, poll_s: float = 0.005,
                on_claimed: Callable[[], None] | None = None) -> CommandResult | None:
    """Poll a command row until it is done or failed; None on timeout.

    For the first CLAIM_WINDOW_S, while the engine has not claimed the command, the row is polled every CLAIM_POLL_S
    at most, so `on_claimed` (called once, when the row leaves 'pending') fires within a few milliseconds of a
    doorbell-woken claim; otherwise every poll_s (a busy or absent engine does not make the client spin)."""
    fast_until = time.monotonic() + CLAIM_WINDOW_S
    deadline = time.monotonic() + timeout_s
    claimed = False
    while True:
        with store.connect() as conn:
            row = conn.execute(select(commands.c.command, commands.c.status, commands.c.result)
                               .where(commands.c.id == cmd_id)).first()
        if row is None:
            raise ValueError(f"command id {cmd_id} does not exist")
        if not claimed and row.status != "pending":
            claimed = True
            if on_claimed is not None:
                on_claimed()
        if row.status in ("done", "failed"):
            body = json.loads(row.result or "{}")
            return CommandResult(bool(body.get("ok", row.status == "done")), row.command, cmd_id,
                                 str(body.get("message", "")), dict(body.get("data") or {}))
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(poll_s, CLAIM_POLL_S) if not claimed and time.monotonic() < fast_until else poll_s)
