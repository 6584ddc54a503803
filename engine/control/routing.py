"""Which engine(s) a command goes to on a desk with several engines, and sending one command to all of them.

- `--engine NAME` (ControlClient.engine): that engine only; a tightening command persists HALTED/REDUCING in its own
  trading-state scope (`engine:<name>`), so the other engines keep trading and the halt survives its restarts.
- A command about one instance goes to the engine that owns it (only that engine's broker holds its orders).
- halt, emergency stop, flatten and stop with no --engine on a desk with several engines: the desk-wide state is
  persisted once (every engine's order gate reads it before its next order), then one command row per engine, each
  engine's doorbell rung, all results awaited together and merged. A dead engine's row stays queued (flatten) or is
  recorded as applied (halt: the state was the whole command; that engine cancels at its next start).
- Anything else, or a desk with one engine: one row for whichever engine runs, exactly as before engines had names.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.control.catalogue import Command, CommandResult
from engine.control.command_rows import finish_command
from engine.control.engines import engine_names, instance_owner
from engine.store.engines import engine_scope

if TYPE_CHECKING:
    from engine.control.client import ControlClient, Progress

GLOBAL = "global"


def route(client: "ControlClient", command: str, spec: Command, args: dict[str, Any]
          ) -> tuple[list[str | None], str] | CommandResult:
    """(target engines, trading-state scope) for a command, or a failed result naming an unknown engine."""
    names = engine_names(client.store)
    if client.engine is not None:
        if client.engine not in names:
            known = ", ".join(names) or "none has run yet"
            return CommandResult(False, command, None, f"no engine named {client.engine!r} on this desk (engines: "
                                 f"{known}); `quantdesk engines` lists them")
        return [client.engine], engine_scope(client.engine) if spec.tightening or command == "resume" else GLOBAL
    if "instance_id" in args:
        owner = instance_owner(client.store, args["instance_id"])
        return ([None] if owner in (None, "main") else [owner]), GLOBAL
    if len(names) > 1 and spec.per_engine:
        return list(names), GLOBAL
    if len(names) == 1 and names[0] != "main":
        return [names[0]], GLOBAL
    return [None], GLOBAL


def send_to_all(client: "ControlClient", command: str, spec: Command, args: dict[str, Any], names: list[str],
                progress: "Progress | None" = None) -> CommandResult:
    """Persist the desk-wide state once (tightening commands), then queue one row per engine, ring every doorbell
    and wait for every result; the merged result is ok only when every engine's is."""
    from engine.control.command_rows import submit_command, wait_result
    from engine.risk.trading_state import TradingState, TransitionError, set_state

    t0 = time.perf_counter()
    state_ms = None
    if spec.tightening:
        try:
            set_state(client.store, TradingState.REDUCING if command == "reduce" else TradingState.HALTED,
                      str(args.get("reason", command)), client.source, client.user)
        except TransitionError as exc:
            return CommandResult(False, command, None, str(exc))
        state_ms = (time.perf_counter() - t0) * 1000
        if progress is not None:
            progress("persisted")
    results: dict[str, CommandResult] = {}
    waiting: dict[str, int] = {}
    for name in names:
        alive = client.engine_alive(name)
        if not alive and spec.offline:  # the persisted state was the whole command for a dead engine
            cmd_id = submit_command(client.store, command, args, client.source, client.user, status="running",
                                    target=name)
            results[name] = CommandResult(True, command, cmd_id, "HALTED; engine not running, state persisted "
                                          "(it cancels its orders at its next start)", {"state": "HALTED"})
            finish_command(client.store, cmd_id, results[name])
            continue
        cmd_id = submit_command(client.store, command, args, client.source, client.user, target=name)
        if not alive:
            results[name] = CommandResult(True, command, cmd_id, f"engine not running: {command} is queued and runs "
                                          "at its next start", {"queued": True})
            continue
        client.ring(name)
        waiting[name] = cmd_id
    claimed: list[bool] = []

    def on_claimed() -> None:
        if progress is not None and not claimed:
            claimed.append(True)
            progress("claimed")

    deadline = time.monotonic() + client.timeout_s
    for name, cmd_id in waiting.items():
        got = wait_result(client.store, cmd_id, max(0.05, deadline - time.monotonic()), client.poll_s, on_claimed)
        results[name] = got or CommandResult(
            spec.tightening, command, cmd_id, f"the engine did not answer within {client.timeout_s:.1f}s (queued)",
            {"queued": True})
    return _merge(command, names, results, state_ms)


def _merge(command: str, names: list[str], results: dict[str, CommandResult], state_ms: float | None
           ) -> CommandResult:
    """One result for the whole desk: every engine's message by name, ok only when all are."""
    ok = all(results[n].ok for n in names)
    message = "; ".join(f"[{n}] {results[n].message}" for n in names)
    data: dict[str, Any] = {"engines": {n: {"ok": results[n].ok, "message": results[n].message,
                                            **results[n].data} for n in names}}
    for n in names:
        for key, value in results[n].data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("canceled", "closed",
                                                                                             "positions_left"):
                data[key] = data.get(key, 0) + value
    if any(r.data.get("state") for r in results.values()):
        data["state"] = next(r.data["state"] for r in results.values() if r.data.get("state"))
    if state_ms is not None:
        data["state_persisted_ms"] = round(state_ms, 2)
    return CommandResult(ok, command, None, message, data)
