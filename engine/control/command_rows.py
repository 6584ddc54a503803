"""Writing a command's outcome to the `commands` table: shared by the client (offline commands) and the engine's
command processor, so neither imports the other for it."""

from __future__ import annotations

import json

from engine.clock import now_ms
from engine.control.catalogue import CommandResult
from engine.store.db import Store
from engine.store.schema import commands


def finish_command(store: Store, cmd_id: int, result: CommandResult) -> None:
    """Write a command's result and final status."""
    payload = json.dumps({"ok": result.ok, "message": result.message, "data": result.data}, default=str)
    with store.begin() as conn:
        conn.execute(commands.update().where(commands.c.id == cmd_id).values(
            status="done" if result.ok else "failed", result=payload, done_at=now_ms()))
