"""The engines of a desk as every front end sees them: names, liveness, instances and each engine's own state.

Several engines (one per account or venue) may share one store (engine/store/engines.py). Each writes its own
`engine_status` row (by name; main's is id 1) and owns the instances it declared. Front ends list them (`quantdesk
engines`, `quantdesk status`, the console header), address commands to one (`--engine NAME`) or to all, and judge
each one's liveness by the same rule as ever (engine/control/liveness.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.clock import now_ms
from engine.control.liveness import engine_alive
from engine.store.db import Store
from engine.store.engines import portfolio_scope
from engine.store.schema import engine_status, equity_snapshots, strategy_instances, trading_state


@dataclass(frozen=True)
class EngineInfo:
    """One engine of the desk: who it is, whether it lives, what it trades and its own trading state."""

    name: str
    alive: bool
    pid: int
    host: str
    mode: str
    phase: str
    started_at: int
    heartbeat_at: int
    instances: tuple[str, ...]
    state: str  # its own scope's state (engine:<name>); the desk-wide state applies on top
    state_reason: str
    equity: float | None = None  # its portfolio total (portfolio for main, portfolio:<name> for others), latest
    gross_exposure: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (CLI --json)."""
        return {**self.__dict__, "instances": list(self.instances)}


def _status_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(select(engine_status).order_by(engine_status.c.id)).mappings())


def list_engines(conn: Connection, now: int | None = None, heartbeat_timeout_ms: int = 5000) -> list[EngineInfo]:
    """Every engine that ever ran on this desk, main first, then by name."""
    now = now_ms() if now is None else now
    owned: dict[str, list[str]] = {}
    for inst_id, eng in conn.execute(select(strategy_instances.c.id, strategy_instances.c.engine)
                                     .order_by(strategy_instances.c.id)):
        owned.setdefault(eng or "main", []).append(inst_id)
    states = {r[0].split(":", 1)[1]: (r[1], r[2]) for r in conn.execute(
        select(trading_state.c.scope, trading_state.c.state, trading_state.c.reason)
        .where(trading_state.c.scope.like("engine:%")))}
    out = []
    for row in _status_rows(conn):
        info = json.loads(row["info"] or "{}")
        stopped = bool(info.get("stopped", False))
        name = row["name"] or "main"
        state, reason = states.get(name, ("ACTIVE", ""))
        last = conn.execute(select(equity_snapshots.c.equity, equity_snapshots.c.gross_exposure)
                            .where(equity_snapshots.c.scope == portfolio_scope(name))
                            .order_by(equity_snapshots.c.ts.desc()).limit(1)).first()
        out.append(EngineInfo(name=name, pid=int(row["pid"]), host=row["host"], mode=row["mode"],
                              alive=engine_alive(int(row["pid"]), row["host"], row["heartbeat_at"], stopped, now,
                                                 heartbeat_timeout_ms),
                              phase=str(info.get("phase", "")), started_at=int(row["started_at"]),
                              heartbeat_at=int(row["heartbeat_at"]), instances=tuple(owned.get(name, ())),
                              state=state, state_reason=reason, equity=None if last is None else float(last[0]),
                              gross_exposure=None if last is None else float(last[1])))
    out.sort(key=lambda e: (e.name != "main", e.name))
    return out


def engine_names(store: Store) -> list[str]:
    """The names of every engine that ever ran on this desk (main first)."""
    with store.connect() as conn:
        names = [r[0] or "main" for r in conn.execute(select(engine_status.c.name))]
    return sorted(names, key=lambda n: (n != "main", n))


def named_engine_alive(store: Store, name: str | None, heartbeat_timeout_s: float) -> bool:
    """True when engine `name` lives (None: main's row, id 1, as front ends always judged the desk's engine)."""
    with store.connect() as conn:
        where = engine_status.c.id == 1 if name is None else engine_status.c.name == name
        row = conn.execute(select(engine_status).where(where)).mappings().first()
    if row is None:
        return False
    stopped = bool(json.loads(row["info"] or "{}").get("stopped", False))
    return engine_alive(int(row["pid"]), row["host"], row["heartbeat_at"], stopped, now_ms(),
                        int(heartbeat_timeout_s * 1000))


def instance_owner(store: Store, instance_id: str) -> str | None:
    """The engine that owns an instance (None when no such instance exists)."""
    with store.connect() as conn:
        return conn.execute(select(strategy_instances.c.engine)
                            .where(strategy_instances.c.id == instance_id)).scalar()
