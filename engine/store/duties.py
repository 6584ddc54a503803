"""Desk-wide duties run once per desk, whichever engines run: a claim row per duty in the store.

Several engines on one desk each schedule the backup and the retention sweep (each engine's scheduler is its own);
without a claim every engine copied the database and swept the same rows. `claim_duty` lets a run proceed only when
the duty's row says nobody ran it within most of its interval, and moves the row in the same statement, so on
SQLite and PostgreSQL alike exactly one engine wins each interval. When that engine stops, another one's next run
claims it: no engine is special.
"""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from engine.store.db import Store
from engine.store.schema import desk_duties

SLACK = 0.9  # a run claims the duty when the last run is at least this fraction of the interval ago


def claim_duty(store: Store, name: str, engine: str, every_ms: int, now: int) -> bool:
    """True when `engine` should run desk duty `name` now (and the claim is recorded), False when another engine of
    the desk ran it within SLACK x `every_ms`."""
    with store.begin() as conn:
        moved = conn.execute(update(desk_duties)
                             .where(desk_duties.c.name == name, desk_duties.c.ran_at <= now - int(every_ms * SLACK))
                             .values(engine=engine, ran_at=now)).rowcount
        if moved:
            return True
        exists = conn.execute(desk_duties.select().where(desk_duties.c.name == name)).first() is not None
    if exists:
        return False
    try:
        with store.begin() as conn:
            conn.execute(insert(desk_duties).values(name=name, engine=engine, ran_at=now))
    except IntegrityError:
        return False  # another engine inserted the first claim a moment earlier
    return True
