"""Several engines on one desk: which engine this process is, and what it owns.

A desk (one store) may run several engines, one per account or venue, each by its name (`[engine] name`, default
"main"). Each owns the strategy instances it declared (`strategy_instances.engine`), and with them their orders,
fills and positions; each has its own lock, heartbeat row (`engine_status.name`), job store table, doorbell and
trading-state scope (`engine:<name>`, beside the desk-wide `global` one). The engine process binds its name once at
start (`bind_engine`); front ends never bind, so they see the whole desk. On a desk with one engine named "main"
every query below is the one it always was: main owns every instance no other engine claims.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.store.schema import strategy_instances

MAIN = "main"
_bound: list[str] = []  # the name of the engine this process runs, when it runs one


def bind_engine(name: str) -> None:
    """Make this process the engine `name`: its order, position and trading-state reads are scoped to it."""
    _bound[:] = [name]


def unbind_engine() -> None:
    """Forget the binding (an in-process engine stopped; front ends are never bound)."""
    _bound.clear()


def bound_engine() -> str | None:
    """The engine this process runs, or None in a front end."""
    return _bound[0] if _bound else None


def engine_scope(name: str) -> str:
    """The trading-state scope of one engine (the desk-wide scope is 'global')."""
    return f"engine:{name}"


def portfolio_scope(name: str | None = None) -> str:
    """The equity-snapshot scope of an engine's portfolio total: 'portfolio' for main (the desk's as it always was),
    'portfolio:<name>' for any other engine, so two engines' totals never interleave in one series."""
    name = bound_engine() if name is None else name
    return "portfolio" if name in (None, MAIN) else f"portfolio:{name}"


def owned_clause(instance_column: Any, name: str | None = None) -> Any:
    """A WHERE clause keeping rows of the instances engine `name` (default: the bound one) owns; None when unbound.

    Main owns every instance no other engine claims (orders adopted by reconciliation included), so a single-engine
    desk reads exactly what it did before engines had names."""
    name = bound_engine() if name is None else name
    if name is None:
        return None
    owner = strategy_instances.alias("owner")  # never correlated with a query over strategy_instances itself
    if name == MAIN:
        return instance_column.not_in(select(owner.c.id).where(owner.c.engine != MAIN))
    return instance_column.in_(select(owner.c.id).where(owner.c.engine == name))


def scoped(stmt: Any, instance_column: Any, name: str | None = None) -> Any:
    """`stmt` restricted to the bound engine's instances (unchanged in a front end)."""
    clause = owned_clause(instance_column, name)
    return stmt if clause is None else stmt.where(clause)


def jobstore_table(base: str, name: str) -> str:
    """The APScheduler job table of an engine: main keeps `base`, others get their own (job ids would collide)."""
    return base if name == MAIN else f"{base}_{name.replace('-', '_')}"


def status_row_id(name: str) -> int:
    """engine_status.id of engine `name`: 1 for main (every front end reads that row as the desk's engine), a stable
    id derived from the name for any other (two engines starting together never race for the next id)."""
    import hashlib

    if name == MAIN:
        return 1
    return 2 + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % (2**30)


def insert_status_row(conn: Any, name: str, values: dict[str, Any]) -> None:
    """Insert engine `name`'s heartbeat row (on `conn`, inside the caller's transaction)."""
    from engine.store.schema import engine_status

    conn.execute(engine_status.insert().values(id=status_row_id(name), name=name, **values))


def engine_scopes(store: Any) -> list[str]:
    """Every per-engine trading-state scope set on this desk ('engine:<name>'), by name."""
    from engine.store.schema import trading_state

    with store.connect() as conn:
        return sorted(r[0] for r in conn.execute(select(trading_state.c.scope)
                                                 .where(trading_state.c.scope.like("engine:%"))))


def own_state_scope(conn: Any) -> str:
    """The trading-state scope an engine's own decisions (triggers, flatten) move, read on `conn`: the desk's
    ('global') in a front end or on a desk whose only engine is main (as ever); otherwise the bound engine's own
    (`engine:<name>`), so one account's drawdown or reconciliation mismatch never stops the other accounts."""
    from engine.store.schema import engine_status

    name = bound_engine()
    if name is None:
        return "global"
    names = {r[0] for r in conn.execute(select(engine_status.c.name))}
    return "global" if name == MAIN and names <= {MAIN} else engine_scope(name)
