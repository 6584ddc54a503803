"""The persisted trading state: ACTIVE -> REDUCING -> HALTED, and back to ACTIVE only by a confirmed operator.

The state lives in state.db, so a HALTED desk stays HALTED across restarts. Every change is written, in the same
transaction, to the audit log with who moved it and why. `order_allowed` is the gate every broker consults before an
order leaves the process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.store.db import Store
from engine.store.engines import bound_engine, engine_scope
from engine.store.notify import desk_snapshot, enqueue_event
from engine.store.ops import audit
from engine.store.schema import trading_state

GLOBAL = "global"
OPERATOR_SOURCES = frozenset({"console", "cli", "operator"})


class TradingState(str, enum.Enum):
    """What orders may do right now."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only exposure-reducing orders pass
    HALTED = "HALTED"  # no new orders; cancels always pass


class TransitionError(ValueError):
    """A trading-state change that the state machine forbids."""


@dataclass(frozen=True)
class TradingStateChanged:
    """Event: the trading state moved (or was re-asserted) by `source`."""

    scope: str
    previous: TradingState
    current: TradingState
    reason: str
    source: str
    user: str
    ts: int


@dataclass(frozen=True)
class StateRecord:
    """The stored state with when, why and by whom it was last set."""

    state: TradingState
    reason: str
    changed_at: int
    changed_by: str


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def _read(conn: Connection, scope: str) -> StateRecord | None:
    row = conn.execute(select(trading_state).where(trading_state.c.scope == scope)).mappings().first()
    if row is None:
        return None
    return StateRecord(TradingState(row["state"]), row["reason"], row["changed_at"], row["changed_by"])


def _stricter(a: StateRecord | None, b: StateRecord | None) -> StateRecord | None:
    """The more restrictive of two records; on a tie the later change (so an operator's resume of one engine is what
    that engine's triggers see as the last word, as a desk-wide resume is on a one-engine desk)."""
    if a is None or b is None:
        return a or b
    if _SEVERITY[b.state] != _SEVERITY[a.state]:
        return b if _SEVERITY[b.state] > _SEVERITY[a.state] else a
    return b if b.changed_at > a.changed_at else a


def _effective(conn: Connection, scope: str) -> StateRecord | None:
    """The record that governs `scope`: in an engine process of a several-engine desk, asking for the desk-wide
    state answers the stricter of the desk's and this engine's own (`engine:<name>`, set by `halt --engine NAME`)."""
    rec = _read(conn, scope)
    name = bound_engine()
    if scope != GLOBAL or name is None:
        return rec
    return _stricter(rec, _read(conn, engine_scope(name)))


def read_state(conn: Connection, scope: str = GLOBAL) -> StateRecord:
    """The persisted state read on an open connection (inside a caller's transaction); ACTIVE when never set."""
    return _effective(conn, scope) or StateRecord(TradingState.ACTIVE, "initial", 0, "engine")


_latched: dict[str, StateRecord] = {}  # in-memory HALT of this process (storage fault, signal): beats the store


def latch_halt(reason: str, source: str = "engine", scope: str = GLOBAL) -> None:
    """HALT this process now, without touching the store (which may be broken or locked): every `get_state` in this
    process answers HALTED until `clear_latch`, so brokers refuse new orders at once."""
    _latched[scope] = StateRecord(TradingState.HALTED, reason, now_ms(), source)


def clear_latch(scope: str = GLOBAL) -> None:
    """Drop the in-memory HALT once HALTED is persisted (the store then answers for itself)."""
    _latched.pop(scope, None)


def latched(scope: str = GLOBAL) -> StateRecord | None:
    """The in-memory HALT of this process, if any."""
    return _latched.get(scope)


def get_state(store: Store, scope: str = GLOBAL) -> StateRecord:
    """The trading state: an in-memory HALT of this process if latched, else the persisted one (never set = ACTIVE)."""
    if scope in _latched:
        return _latched[scope]
    with store.connect() as conn:
        rec = _effective(conn, scope)
    return rec or StateRecord(TradingState.ACTIVE, "initial", 0, "engine")


def check_transition(current: TradingState, target: TradingState, source: str, confirmed: bool = False) -> None:
    """Raise TransitionError unless the machine allows current -> target from this source."""
    if _SEVERITY[target] >= _SEVERITY[current]:
        return  # tightening (or re-asserting) is always allowed, from anyone
    if source not in OPERATOR_SOURCES:
        raise TransitionError(f"only an operator can loosen the trading state ({current.value} -> {target.value}); "
                              f"source {source!r} may not")
    if current is TradingState.HALTED and target is TradingState.ACTIVE and not confirmed:
        raise TransitionError("resume from HALTED needs an explicit confirmation")
    if current is TradingState.HALTED and target is TradingState.REDUCING:
        raise TransitionError("HALTED resumes to ACTIVE only (confirmed), not to REDUCING")


def set_state(store: Store | Connection, target: TradingState, reason: str, source: str, user: str = "engine",
              confirmed: bool = False, scope: str = GLOBAL,
              values: dict[str, object] | None = None) -> TradingStateChanged:
    """Move the trading state (validated by the state machine); audit it and, when it changed, queue its off-box
    notification (rule values, positions, exposure) in the same transaction."""
    if isinstance(store, Connection):
        return _set(store, target, reason, source, user, confirmed, scope, values)
    with store.begin() as conn:
        return _set(conn, target, reason, source, user, confirmed, scope, values)


def _set(conn: Connection, target: TradingState, reason: str, source: str, user: str, confirmed: bool,
         scope: str, values: dict[str, object] | None = None) -> TradingStateChanged:
    rec = _read(conn, scope)
    current = rec.state if rec else TradingState.ACTIVE
    check_transition(current, target, source, confirmed)
    ts = now_ms()
    row = {"scope": scope, "state": target.value, "reason": reason, "changed_at": ts, "changed_by": source}
    if rec is None:
        conn.execute(trading_state.insert().values(**row))
    else:
        conn.execute(trading_state.update().where(trading_state.c.scope == scope).values(**row))
    audit(conn, source, "trading_state.changed",
          {"scope": scope, "from": current.value, "to": target.value, "reason": reason}, user=user)
    if target is not current:
        _notify(conn, current, target, reason, source, user, values or {}, scope)
    return TradingStateChanged(scope, current, target, reason, source, user, ts)


def _notify(conn: Connection, current: TradingState, target: TradingState, reason: str, source: str, user: str,
            values: dict[str, object], scope: str = GLOBAL) -> None:
    """Queue the notification of a state change with the rule's values, open positions and exposure."""
    desk = desk_snapshot(conn)
    exposure = desk["exposure"]
    where = "" if scope == GLOBAL else f" ({scope.replace(':', ' ', 1)} only)"
    lines = [f"{current.value} -> {target.value}{where} by {source} ({user}): {reason}"]
    if values:
        lines.append("values: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if exposure:
        lines.append(f"equity {exposure['equity']:,.2f}, gross exposure {exposure['gross_exposure']:,.2f}"
                     + (f", net {exposure['net_exposure']:,.2f}" if "net_exposure" in exposure else ""))
    lines.append(f"open positions: {len(desk['positions'])}" + "".join(
        f"\n  {p['instance']} {p['symbol']} {p['qty']:+.6g} @ {p['avg_price']:,.2f}" for p in desk["positions"][:20]))
    severity = "critical" if target is not TradingState.ACTIVE else "warning"
    enqueue_event(conn, "state", severity, f"[{severity.upper()}] trading state {target.value}{where}",
                  "\n".join(lines),
                  {"from": current.value, "to": target.value, "reason": reason, "source": source, "user": user,
                   "values": values, **desk}, rule=str(values.get("rule", "trading_state")))


def order_allowed(state: TradingState, reduces_exposure: bool, is_cancel: bool = False) -> bool:
    """True when an order of this kind may be sent in `state` (cancels always pass)."""
    if is_cancel:
        return True
    if state is TradingState.ACTIVE:
        return True
    if state is TradingState.REDUCING:
        return reduces_exposure
    return False
