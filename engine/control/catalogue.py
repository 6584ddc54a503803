"""The command catalogue: every control command defined once — its arguments, its rules and its handlers.

A `Command` says whether it tightens the trading state (the client persists that before queuing), whether a front
end may apply it with no engine running, whether it is safe to run twice after a crash, whether the operator must
confirm it, how its arguments parse, and what it does: a `state` handler (persisted state only, run by the engine or
by an offline client) and/or an `engine` handler (broker work through `EngineHooks`, running engine only). The
client, the engine's poller and the front ends all read this table; nothing else lists command names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from engine.config import LifecycleConfig
from engine.store.db import Store


@dataclass(frozen=True)
class CommandResult:
    """The typed outcome of one control command."""

    ok: bool
    command: str
    id: int | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineHooks:
    """What a running engine lets commands do besides changing persisted state."""

    cancel_all: Callable[[str | None], int]  # instance id or None -> number canceled
    flatten: Callable[[], dict[str, Any]]
    retrain: Callable[[str], str]
    stop: Callable[[], None]


class CommandError(ValueError):
    """A command row that cannot run: unknown verb or arguments that do not parse (the message says which)."""


@dataclass(frozen=True)
class Arg:
    """One command argument: its name, type and default (no default = required)."""

    name: str
    kind: type
    default: Any = None
    required: bool = True

    def parse(self, raw: Mapping[str, Any]) -> Any:
        """The argument's value from a row's args, converted to its type; CommandError naming it otherwise."""
        if self.name not in raw:
            if self.required:
                raise CommandError(f"argument {self.name!r} is missing")
            return self.default
        value = raw[self.name]
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise CommandError(f"argument {self.name!r} must be true or false, got {value!r}")
        if self.kind is int and not isinstance(value, bool):
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
            raise CommandError(f"argument {self.name!r} must be an integer, got {value!r}")
        if self.kind is str and isinstance(value, str) and (value or not self.required):
            return value
        raise CommandError(f"argument {self.name!r} must be a non-empty {self.kind.__name__}, got {value!r}")


@dataclass(frozen=True)
class StateContext:
    """Who runs a state handler, where: the store, the command row and whether an engine is executing it."""

    store: Store
    cmd_id: int | None
    source: str
    user: str
    engine: bool
    lifecycle: LifecycleConfig
    scope: str = "global"  # the trading-state scope the command moves: desk-wide, or "engine:<name>" (--engine)


StateHandler = Callable[[StateContext, str, dict[str, Any]], "CommandResult"]
EngineHandler = Callable[[EngineHooks, int, dict[str, Any], "CommandResult | None"], "CommandResult"]


@dataclass(frozen=True)
class Command:
    """One control command and its rules."""

    name: str
    summary: str
    args: tuple[Arg, ...] = ()
    tightening: bool = False  # the client persists its trading state before queuing (never waits on the engine)
    offline: bool = False  # a front end may apply it itself when no engine is alive (state-only)
    idempotent: bool = False  # safe to run again when an engine died while running it
    confirm: bool = False  # the front end asks the operator before sending it
    per_engine: bool = False  # on a desk with several engines, every engine runs it (its own broker's part)
    state: StateHandler | None = None
    engine: EngineHandler | None = None

    def parse(self, raw: Any) -> dict[str, Any]:
        """Validated, typed arguments from a row's args (a dict or its JSON text); CommandError otherwise."""
        if isinstance(raw, (str, bytes)) or raw is None:
            try:
                raw = json.loads(raw or "{}")
            except ValueError as exc:
                raise CommandError(f"{self.name}: arguments are not JSON ({exc})") from exc
        if not isinstance(raw, Mapping):
            raise CommandError(f"{self.name}: arguments must be a JSON object, got {type(raw).__name__}")
        extra = set(raw) - {a.name for a in self.args}
        if extra:
            raise CommandError(f"{self.name}: unexpected argument(s) {', '.join(sorted(extra))}")
        try:
            return {a.name: a.parse(raw) for a in self.args}
        except CommandError as exc:
            raise CommandError(f"{self.name}: {exc}") from exc


# --- state handlers (persisted state only; the engine and an offline client run the same code) ---------------------
def _halt(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.risk.trading_state import TradingState, get_state, set_state

    if ctx.engine and get_state(ctx.store).state is TradingState.HALTED:
        return CommandResult(True, name, ctx.cmd_id, "HALTED (set by the front end)", {"state": "HALTED"})
    ch = set_state(ctx.store, TradingState.HALTED, args["reason"], ctx.source, ctx.user, scope=ctx.scope)
    return CommandResult(True, name, ctx.cmd_id, f"HALTED ({ch.previous.value} -> HALTED)"
                         + ("" if ctx.engine else "; no engine running, state persisted"),
                         {"state": "HALTED", "previous": ch.previous.value})


def already_in_state(rec: Any, name: str, cmd_id: int | None) -> CommandResult:
    """The result of a command whose target state the desk already has: says since when, by whom and why."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(rec.changed_at / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return CommandResult(True, name, cmd_id, f"already {rec.state.value} since {when} (set by {rec.changed_by}: "
                         f"{rec.reason}); nothing changed", {"state": rec.state.value, "unchanged": True,
                                                             "since": rec.changed_at, "by": rec.changed_by})


def _reduce(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.risk.trading_state import TradingState, get_state, set_state

    rec = get_state(ctx.store, ctx.scope)
    if rec.state is TradingState.REDUCING:
        if ctx.engine:  # the client persisted it before queuing (an already-REDUCING desk never reaches here)
            return CommandResult(True, name, ctx.cmd_id, "REDUCING (set by the front end)", {"state": "REDUCING"})
        return already_in_state(rec, name, ctx.cmd_id)
    ch = set_state(ctx.store, TradingState.REDUCING, args["reason"], ctx.source, ctx.user, scope=ctx.scope)
    return CommandResult(True, name, ctx.cmd_id, f"{ch.current.value} ({ch.previous.value} -> REDUCING)",
                         {"state": ch.current.value})


def _resume(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.risk.trading_state import GLOBAL, TradingState, get_state, set_state

    ch = set_state(ctx.store, TradingState.ACTIVE, "operator resume", ctx.source, ctx.user, confirmed=args["confirm"],
                   scope=ctx.scope)
    if ctx.scope == GLOBAL:  # a desk-wide resume also lifts every engine's own halt (each audited)
        from engine.store.engines import engine_scopes

        for scope in engine_scopes(ctx.store):
            if get_state(ctx.store, scope).state is not TradingState.ACTIVE:
                set_state(ctx.store, TradingState.ACTIVE, "operator resume (desk-wide)", ctx.source, ctx.user,
                          confirmed=args["confirm"], scope=scope)
        return CommandResult(True, name, ctx.cmd_id, f"ACTIVE ({ch.previous.value} -> ACTIVE)", {"state": "ACTIVE"})
    desk = get_state(ctx.store, GLOBAL).state
    note = "" if desk is TradingState.ACTIVE else f"; the desk itself is still {desk.value}"
    return CommandResult(True, name, ctx.cmd_id, f"{ctx.scope.split(':', 1)[1]} ACTIVE ({ch.previous.value} -> "
                         f"ACTIVE){note}", {"state": "ACTIVE" if not note else desk.value, "engine_state": "ACTIVE"})


def _strategy_status(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.trading import lifecycle

    target = "paused" if name == "pause_strategy" else "running"
    current = lifecycle.get_instance(ctx.store, args["instance_id"])
    if current.status == target:
        return CommandResult(True, name, ctx.cmd_id, f"{current.id} is already {target}; nothing changed",
                             {"instance_id": current.id, "status": target, "unchanged": True})
    inst = lifecycle.set_status(ctx.store, args["instance_id"], target, ctx.source, ctx.user)
    return CommandResult(True, name, ctx.cmd_id, f"{inst.id} {inst.status}", {"instance_id": inst.id,
                                                                                "status": inst.status})


def _promote(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.trading import lifecycle

    rep = lifecycle.promote(ctx.store, args["instance_id"], ctx.lifecycle, args["confirm"], ctx.source, ctx.user)
    return CommandResult(True, name, ctx.cmd_id, f"{rep.instance_id} promoted {rep.from_stage} -> {rep.to_stage}",
                         {"to_stage": rep.to_stage, "checks": [c.__dict__ for c in rep.checks]})


def _demote(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.trading import lifecycle

    inst = lifecycle.demote(ctx.store, args["instance_id"], args["reason"], ctx.source, ctx.user)
    return CommandResult(True, name, ctx.cmd_id, f"{inst.id} demoted to {inst.stage}", {"stage": inst.stage})


def _model(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.ml.registry import ModelIntegrityError, ModelRegistry

    # artefact paths are stored absolute; models_dir only matters for saving, which neither action does
    registry = ModelRegistry(ctx.store, ctx.store.path.parent / "models" if ctx.store.path else "models")
    strategy = args["strategy"]
    try:
        if name == "promote_model":
            model = registry.promote(strategy, args["version"], source=ctx.source, user=ctx.user,
                                     reason="operator promote")
        else:
            model = registry.rollback(strategy, source=ctx.source, user=ctx.user)
    except (ModelIntegrityError, ValueError, KeyError) as exc:
        champ = registry.champion_record(strategy)
        return CommandResult(False, name, ctx.cmd_id, f"refused: {exc}",
                             {"strategy": strategy, "champion": None if champ is None else champ.version})
    return CommandResult(True, name, ctx.cmd_id, f"{strategy}: champion is now v{model.version}",
                         {"strategy": strategy, "version": model.version})


def _ack(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult:
    from engine.store.ops import ack_alert

    done = ack_alert(ctx.store, args["alert_id"], ctx.user, source=ctx.source)
    if done:
        return CommandResult(True, name, ctx.cmd_id, "acknowledged", {"alert_id": args["alert_id"]})
    return _ack_refused(ctx, name, args["alert_id"])


def _ack_refused(ctx: StateContext, name: str, alert_id: int) -> CommandResult:
    """Why an acknowledgement changed nothing: no such alert, or who acknowledged it and when."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from engine.store.schema import alerts

    with ctx.store.connect() as conn:
        row = conn.execute(select(alerts.c.acked_by, alerts.c.acked_at).where(alerts.c.id == alert_id)).first()
    if row is None:
        return CommandResult(False, name, ctx.cmd_id, f"alert {alert_id} does not exist", {"alert_id": alert_id})
    when = "-" if row.acked_at is None else \
        datetime.fromtimestamp(row.acked_at / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return CommandResult(True, name, ctx.cmd_id, f"alert {alert_id} was already acknowledged by {row.acked_by} at "
                         f"{when}; nothing changed", {"alert_id": alert_id, "unchanged": True,
                                                      "acked_by": row.acked_by, "acked_at": row.acked_at})


# --- engine handlers (broker work, running engine only; `prior` is the state handler's result) ---------------------
def _cancel_after_halt(hooks: EngineHooks, cmd_id: int, args: dict[str, Any], prior: CommandResult | None
                       ) -> CommandResult:
    assert prior is not None
    data = {**prior.data, "canceled": hooks.cancel_all(None)}
    return CommandResult(True, prior.command, cmd_id, f"{prior.message}; canceled {data['canceled']} open orders", data)


def _flatten(hooks: EngineHooks, cmd_id: int, args: dict[str, Any], prior: CommandResult | None) -> CommandResult:
    data = {**(prior.data if prior else {}), **hooks.flatten()}
    head = f"{prior.message}; canceled" if prior else "flatten: canceled"
    return CommandResult(True, prior.command if prior else "flatten", cmd_id,
                         f"{head} {data.get('canceled', 0)} orders, closed {data.get('closed', 0)} positions", data)


def _cancel_instance(hooks: EngineHooks, cmd_id: int, args: dict[str, Any], prior: CommandResult | None
                     ) -> CommandResult:
    assert prior is not None
    return CommandResult(True, prior.command, cmd_id, prior.message,
                         {**prior.data, "canceled": hooks.cancel_all(args["instance_id"])})


def _retrain(hooks: EngineHooks, cmd_id: int, args: dict[str, Any], prior: CommandResult | None) -> CommandResult:
    return CommandResult(True, "retrain_now", cmd_id, hooks.retrain(args["strategy"]))


def _stop(hooks: EngineHooks, cmd_id: int, args: dict[str, Any], prior: CommandResult | None) -> CommandResult:
    hooks.stop()
    return CommandResult(True, "stop", cmd_id, "engine stopping")


_REASON = Arg("reason", str)
_INSTANCE = Arg("instance_id", str)
_STRATEGY = Arg("strategy", str)

CATALOGUE: dict[str, Command] = {c.name: c for c in (
    Command("halt", "HALT: no new orders, cancel open orders", (_REASON,), tightening=True, offline=True,
            idempotent=True, per_engine=True, state=_halt, engine=_cancel_after_halt),
    Command("emergency_stop", "HALT + FLATTEN in one command", (_REASON,), tightening=True, idempotent=True,
            confirm=True, per_engine=True, state=_halt, engine=_flatten),
    Command("reduce", "REDUCING: only exposure-reducing orders pass", (_REASON,), tightening=True, offline=True,
            idempotent=True, state=_reduce),
    Command("flatten", "cancel all open orders and close all positions", idempotent=True, confirm=True,
            per_engine=True, engine=_flatten),
    Command("resume", "back to ACTIVE (from HALTED only confirmed)", (Arg("confirm", bool, False, False),),
            offline=True, idempotent=True, confirm=True, state=_resume),
    Command("pause_strategy", "pause one instance and cancel its orders", (_INSTANCE,), offline=True,
            idempotent=True, state=_strategy_status, engine=_cancel_instance),
    Command("resume_strategy", "resume a paused instance", (_INSTANCE,), offline=True, idempotent=True,
            state=_strategy_status),
    Command("promote", "promote an instance one stage when its gates pass",
            (_INSTANCE, Arg("confirm", bool, False, False)), offline=True, confirm=True, state=_promote),
    Command("demote", "demote an instance one stage", (_INSTANCE, Arg("reason", str, "", False)), offline=True,
            state=_demote),
    Command("promote_model", "make a saved meta-model version the champion", (_STRATEGY, Arg("version", int)),
            offline=True, idempotent=True, confirm=True, state=_model),
    Command("rollback_model", "reinstate the previous champion meta-model", (_STRATEGY,), offline=True,
            confirm=True, state=_model),
    Command("retrain_now", "run the retraining job for a strategy now", (_STRATEGY,), idempotent=True,
            engine=_retrain),
    Command("ack_alert", "acknowledge an alert", (Arg("alert_id", int),), offline=True, idempotent=True, state=_ack),
    Command("stop", "shut the engine down gracefully", idempotent=True, confirm=True, per_engine=True,
            engine=_stop),
)}


def command(name: str) -> Command:
    """The catalogue entry for `name`; CommandError 'unknown command' for anything else."""
    found = CATALOGUE.get(name)
    if found is None:
        raise CommandError(f"unknown command {name!r} (known: {', '.join(sorted(CATALOGUE))})")
    return found


def run_state(ctx: StateContext, name: str, args: dict[str, Any]) -> CommandResult | None:
    """Run a command's state handler (None when it has none); rule violations become a failed result."""
    from engine.risk.trading_state import TransitionError
    from engine.trading.lifecycle import LifecycleError

    handler = command(name).state
    if handler is None:
        return None
    try:
        return handler(ctx, name, args)
    except (TransitionError, LifecycleError, KeyError, ValueError) as exc:
        return CommandResult(False, name, ctx.cmd_id, str(exc))
