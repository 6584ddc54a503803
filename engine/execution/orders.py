"""Orders, fills and positions in state.db: deterministic client order ids and crash-safe fill bookkeeping.

`record_fill` inserts the fill, advances the order and moves the position in ONE transaction, so after a kill -9
positions always equal the sum of fills and no fill is half-applied. Fill ids are unique, so replaying a fill is a
no-op. Client order ids are derived from (instance, symbol, bar, purpose): a strategy tick re-run after a crash
produces the same id and the broker returns the existing order instead of sending a second one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping

from sqlalchemy import func, insert, literal, select, union_all, update
from sqlalchemy.engine import Connection

from engine.store.db import Store
from engine.store.engines import scoped
from engine.store.schema import fills, orders, positions

class OrderStatus(str, Enum):
    """Where an order is in its life: open (new, open, partial) or final (filled, canceled, rejected)."""

    NEW = "new"  # stored, not yet acknowledged by the venue
    OPEN = "open"  # resting at the venue, nothing filled
    PARTIAL = "partial"  # resting, partly filled
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be canceled."""
        return self in _OPEN


_OPEN = frozenset({OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.PARTIAL})
OPEN_STATUSES = tuple(s.value for s in OrderStatus if s.is_open)  # the one open set (SQL IN lists use these)
FINAL_STATUSES = tuple(s.value for s in OrderStatus if not s.is_open)
SIDES = ("buy", "sell")
TYPES = ("market", "limit", "stop", "take")  # stop / take: exchange-side protective orders (price = trigger)
EPS = 1e-12


class OrderError(ValueError):
    """An order request that is malformed (names the field)."""


class OrderBlocked(RuntimeError):
    """The trading state (or a capital cap) does not allow this order right now."""


CLIENT_ID_PREFIX = "qd-"  # every order this desk sends carries it: orphans on the exchange are recognised by it
VENUES = ("paper", "exchange")


def instance_tag(instance_id: str) -> str:
    """The instance as it appears inside client order ids: its letters and digits, at most 8 of them."""
    tag = "".join(ch for ch in instance_id if ch.isalnum())[:8]
    return tag or "x"


def client_order_id(instance_id: str, symbol: str, bar_ts: int, purpose: str = "target") -> str:
    """Deterministic, exchange-safe (<= 32 chars, [A-Za-z0-9-]) client order id for one decision.

    Shape `qd-<instance tag>-<digest>`: the instance is readable in the id on the exchange (attribution after a lost
    state.db, orphan triage), and the digest of (instance, symbol, bar, purpose) keeps it idempotent."""
    digest = hashlib.sha1(f"{instance_id}|{symbol}|{bar_ts}|{purpose}".encode()).hexdigest()[:20]
    return f"{CLIENT_ID_PREFIX}{instance_tag(instance_id)}-{digest}"


@dataclass(frozen=True)
class OrderRequest:
    """What a strategy (or flatten) asks a broker to do."""

    instance_id: str
    symbol: str
    side: str
    qty: float
    client_order_id: str
    type: str = "market"
    price: float | None = None
    reduce_only: bool = False
    reason: str = ""
    intent: str = "trade"  # trade | flatten | protect (flatten and protective orders pass a HALTED desk's gate)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise OrderError(f"side: must be buy or sell, got {self.side!r}")
        if self.type not in TYPES:
            raise OrderError(f"type: must be market or limit, got {self.type!r}")
        if not self.qty > 0:
            raise OrderError(f"qty: must be positive, got {self.qty!r}")
        if self.type != "market" and not (self.price and self.price > 0):
            raise OrderError(f"price: a {self.type} order needs a positive price, got {self.price!r}")
        if self.type in ("stop", "take") and not self.reduce_only:
            raise OrderError(f"reduce_only: a {self.type} order only protects a position, it must be reduce-only")
        if not self.client_order_id or len(self.client_order_id) > 36:
            raise OrderError(f"client_order_id: 1..36 characters, got {self.client_order_id!r}")
        if self.intent not in ("trade", "flatten", "protect"):
            raise OrderError(f"intent: must be trade, flatten or protect, got {self.intent!r}")


@dataclass(frozen=True)
class Fill:
    """One execution of (part of) an order."""

    fill_id: str
    client_order_id: str
    instance_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    liquidity: str
    ts: int
    fee_base: float = 0.0  # commission paid in the base asset (Binance spot buys): the holding moves by qty - fee_base

    @property
    def net_qty(self) -> float:
        """Signed change of the holding: buys add qty less base fees, sells remove qty plus base fees."""
        return self.qty - self.fee_base if self.side == "buy" else -(self.qty + self.fee_base)


def get_order(conn: Connection | Store, coid: str) -> dict[str, Any] | None:
    """The order row for a client order id, as a dict."""
    stmt = select(orders).where(orders.c.client_order_id == coid)
    if isinstance(conn, Store):
        with conn.connect() as c:
            row = c.execute(stmt).mappings().first()
    else:
        row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


def insert_order(store: Store, req: OrderRequest, ts: int, status: str = OrderStatus.NEW.value,
                 venue: str = "paper") -> tuple[dict[str, Any], bool]:
    """Insert the order unless its client id exists; returns (row, created). `venue` says which broker owns it."""
    if venue not in VENUES:
        raise OrderError(f"venue: must be one of {VENUES}, got {venue!r}")
    with store.begin() as conn:
        existing = get_order(conn, req.client_order_id)
        if existing is not None:
            return existing, False
        conn.execute(insert(orders).values(
            client_order_id=req.client_order_id, instance_id=req.instance_id, symbol=req.symbol, side=req.side,
            type=req.type, qty=req.qty, price=req.price, reduce_only=int(req.reduce_only), status=status,
            filled_qty=0.0, reason=req.reason, created_at=ts, updated_at=ts, venue=venue))
        return get_order(conn, req.client_order_id) or {}, True


def set_order_status(store: Store | Connection, coid: str, status: str, ts: int, *, reason: str | None = None,
                     exchange_order_id: str | None = None) -> None:
    """Move an order's status (never out of a final status)."""
    values: dict[str, Any] = {"status": status, "updated_at": ts}
    if reason is not None:
        values["reason"] = reason
    if exchange_order_id is not None:
        values["exchange_order_id"] = exchange_order_id
    stmt = update(orders).where(orders.c.client_order_id == coid, orders.c.status.notin_(FINAL_STATUSES)).values(
        **values)
    if isinstance(store, Connection):
        store.execute(stmt)
        return
    with store.begin() as conn:
        conn.execute(stmt)


def set_exchange_order_id(store: Store, coid: str, exchange_order_id: str) -> None:
    """Remember the exchange's id for our order (whatever its status)."""
    with store.begin() as conn:
        conn.execute(update(orders).where(orders.c.client_order_id == coid,
                                          orders.c.exchange_order_id.is_(None)).values(
            exchange_order_id=exchange_order_id))


def _apply_to_position(conn: Connection, f: Fill) -> None:
    """Move the (instance, symbol) position by one fill: weighted entry, realized P&L on closes, fees."""
    row = conn.execute(select(positions).where(positions.c.instance_id == f.instance_id,
                                               positions.c.symbol == f.symbol)).mappings().first()
    qty, avg, realized, fees_paid = (0.0, 0.0, 0.0, 0.0) if row is None else (
        row["qty"], row["avg_price"], row["realized_pnl"], row["fees"])
    delta = f.net_qty
    if abs(qty) < EPS or (qty > 0) == (delta > 0):
        new_qty = qty + delta
        avg = (abs(qty) * avg + abs(delta) * f.price) / abs(new_qty)  # the base fee is in f.fee (quote), not here
    else:
        closing = min(abs(qty), abs(delta))
        realized += closing * (f.price - avg) * (1 if qty > 0 else -1)
        new_qty = qty + delta
        if abs(new_qty) < EPS:
            new_qty, avg = 0.0, 0.0
        elif (new_qty > 0) != (qty > 0):
            avg = f.price
    values = {"qty": new_qty, "avg_price": avg, "realized_pnl": realized, "fees": fees_paid + f.fee,
              "updated_at": f.ts}
    if row is None:
        conn.execute(insert(positions).values(instance_id=f.instance_id, symbol=f.symbol, funding=0.0, **values))
    else:
        conn.execute(update(positions).where(positions.c.instance_id == f.instance_id,
                                             positions.c.symbol == f.symbol).values(**values))


def record_fill(store: Store, f: Fill, *, final_status: str | None = None, expected_filled: float | None = None
                ) -> bool:
    """Atomically insert a fill, advance its order and move the position; False if the fill id already exists, or
    when `expected_filled` (the order's filled quantity the fill was derived from) is no longer the order's: another
    thread booked that quantity first, under another fill id, and the caller recomputes from the order as it is now.
    The order row is locked for the transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer)."""
    with store.begin() as conn:
        row = conn.execute(select(orders).where(orders.c.client_order_id == f.client_order_id)
                           .with_for_update()).mappings().first()
        if row is None:
            raise OrderError(f"client_order_id: no order {f.client_order_id!r} for fill {f.fill_id!r}")
        order = dict(row)
        if conn.execute(select(fills.c.id).where(fills.c.fill_id == f.fill_id)).first() is not None:
            return False
        where = [orders.c.client_order_id == f.client_order_id]
        if expected_filled is not None:
            if abs(order["filled_qty"] - expected_filled) > EPS:
                return False
            # SQLite reads outside the write lock: the update only lands on the row as read, else another writer won
            where.append(orders.c.filled_qty == order["filled_qty"])
        filled = order["filled_qty"] + f.qty
        avg = ((order["avg_price"] or 0.0) * order["filled_qty"] + f.price * f.qty) / filled
        status = final_status or (OrderStatus.FILLED.value if filled >= order["qty"] * (1 - 1e-9)
                                   else OrderStatus.PARTIAL.value)
        if not conn.execute(update(orders).where(*where).values(filled_qty=filled, avg_price=avg, status=status,
                                                               updated_at=f.ts)).rowcount:
            return False
        conn.execute(insert(fills).values(fill_id=f.fill_id, client_order_id=f.client_order_id,
                                          instance_id=f.instance_id, symbol=f.symbol, side=f.side, qty=f.qty,
                                          price=f.price, fee=f.fee, liquidity=f.liquidity, ts=f.ts,
                                          fee_base=f.fee_base))
        _apply_to_position(conn, f)
    return True


def apply_funding(store: Store, instance_id: str, symbol: str, amount: float, ts: int) -> None:
    """Add a funding payment (positive = paid) to a position."""
    with store.begin() as conn:
        conn.execute(update(positions).where(positions.c.instance_id == instance_id, positions.c.symbol == symbol)
                     .values(funding=positions.c.funding + amount, updated_at=ts))


def next_fill_seq(store: Store, coid: str) -> int:
    """1 + the number of fills already recorded for an order (deterministic fill ids)."""
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(fills)
                                .where(fills.c.client_order_id == coid)).scalar() or 0) + 1


def open_orders(store: Store, instance_id: str | None = None, venue: str | None = None) -> list[dict[str, Any]]:
    """Orders in new/open/partial status (of one instance, on one venue), oldest first."""
    stmt = select(orders).where(orders.c.status.in_(OPEN_STATUSES)).order_by(orders.c.id)
    if instance_id is not None:
        stmt = stmt.where(orders.c.instance_id == instance_id)
    else:  # an engine of a several-engine desk sees its own instances' orders only
        stmt = scoped(stmt, orders.c.instance_id)
    if venue is not None:
        stmt = stmt.where(orders.c.venue == venue)
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def load_positions(store: Store, instance_id: str | None = None, nonzero: bool = True) -> list[dict[str, Any]]:
    """Position rows (non-zero by default)."""
    stmt = select(positions).order_by(positions.c.instance_id, positions.c.symbol)
    if instance_id is not None:
        stmt = stmt.where(positions.c.instance_id == instance_id)
    else:  # an engine of a several-engine desk holds (and flattens, reconciles) its own instances' positions only
        stmt = scoped(stmt, positions.c.instance_id)
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    return [r for r in rows if abs(r["qty"]) > EPS] if nonzero else rows


def position_qty(store: Store, instance_id: str, symbol: str) -> float:
    """Signed quantity held by an instance in a symbol."""
    with store.connect() as conn:
        q = conn.execute(select(positions.c.qty).where(positions.c.instance_id == instance_id,
                                                       positions.c.symbol == symbol)).scalar()
    return float(q or 0.0)


def positions_from_fills(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """Signed net quantity per (instance, symbol) implied by fill rows (the audit of `positions`)."""
    out: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["instance_id"], r["symbol"])
        base_fee = float(r.get("fee_base") or 0.0)
        out[key] = out.get(key, 0.0) + (r["qty"] - base_fee if r["side"] == "buy" else -(r["qty"] + base_fee))
    return out


def check_positions_match_fills(store: Store, tol: float = 1e-9) -> list[str]:
    """Names every (instance, symbol) whose stored position differs from the sum of its fills (empty = consistent).

    In an engine of a several-engine desk only its own instances. Fills and positions are read by ONE statement, so
    both come from one snapshot on SQLite and PostgreSQL alike: read by two, a fill booked between them (the trader,
    the poll job) looked like a mismatch and tripped the reconciliation HALT."""
    both = union_all(
        scoped(select(literal("fill").label("kind"), fills.c.instance_id, fills.c.symbol, fills.c.side, fills.c.qty,
                      fills.c.fee_base), fills.c.instance_id),
        scoped(select(literal("position").label("kind"), positions.c.instance_id, positions.c.symbol,
                      literal("").label("side"), positions.c.qty, literal(0.0).label("fee_base")),
               positions.c.instance_id))
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(both).mappings()]
    implied = positions_from_fills(r for r in rows if r["kind"] == "fill")
    stored = {(r["instance_id"], r["symbol"]): r["qty"] for r in rows if r["kind"] == "position"}
    bad = []
    for key in set(implied) | set(stored):
        if abs(implied.get(key, 0.0) - stored.get(key, 0.0)) > tol * max(1.0, abs(implied.get(key, 0.0))):
            bad.append(f"{key[0]}/{key[1]}: position {stored.get(key, 0.0)} != fills {implied.get(key, 0.0)}")
    return sorted(bad)


def positions_on_venue(store: Store, venue: str, nonzero: bool = True) -> list[dict[str, Any]]:
    """Positions (non-zero by default) held through one venue: those of instances whose latest order went there.

    An instance trades on one venue at a time (its stage picks the broker), and a change of venue first closes what
    it held on the old one, so the venue of its latest order is the venue of what it holds."""
    latest = select(orders.c.instance_id, func.max(orders.c.id).label("last_id")).group_by(
        orders.c.instance_id).subquery()
    stmt = select(latest.c.instance_id).join(orders, orders.c.id == latest.c.last_id).where(orders.c.venue == venue)
    with store.connect() as conn:
        owners = {r[0] for r in conn.execute(stmt)}
    return [p for p in load_positions(store, nonzero=nonzero) if p["instance_id"] in owners]
