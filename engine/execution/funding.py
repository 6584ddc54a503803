"""Funding of perpetual positions booked into each instance's sub-ledger, for either venue.

Paper (`book_funding`): the predicted rate x the instance's qty x mark at each new funding time; the paper broker's
only source of funding cash. Exchange (`book_exchange_funding`): what the exchange actually settled, read from its
income history (Binance GET /fapi/v1/income FUNDING_FEE, ccxt fetch_funding_history), split over the instances by the
quantity each held at the funding time (replayed from their fills on the exchange venue): the account's one net
position paid it, so an instance long pays its part and one short receives its part. Each payment is booked once
(audit `funding.exchange`, its tranId and time; a restart continues after the last one; the first run starts at now).
"""

from __future__ import annotations

from typing import Any, Callable

from engine.execution.orders import apply_funding, positions_on_venue
from engine.store.db import Store
from engine.store.ops import raise_alert


def book_funding(store: Store, venue: str, fetch_rate: Callable[[str], dict[str, Any]],
                 mark: Callable[[str], float], seen: dict[tuple[str, str], int]) -> int:
    """Charge each perpetual position on `venue` at every new funding timestamp; returns payments booked.

    `seen` maps (instance, symbol) to the last funding timestamp booked (the first one seen is the baseline, so a
    restart never charges a period twice)."""
    booked = 0
    for pos in positions_on_venue(store, venue):
        if ":" not in pos["symbol"]:
            continue
        try:
            fr = fetch_rate(pos["symbol"])
        except Exception as exc:  # noqa: BLE001 - funding data missing is an alert, not a crash
            raise_alert(store, "warning", f"{venue}.funding", f"funding rate unavailable for {pos['symbol']}",
                        {"error": str(exc)[:300]})
            continue
        key = (pos["instance_id"], pos["symbol"])
        ts = int(fr.get("fundingTimestamp") or fr.get("timestamp") or 0)
        last = seen.setdefault(key, ts)
        if ts <= last:
            continue
        price = float(fr.get("markPrice") or mark(pos["symbol"]))
        apply_funding(store, pos["instance_id"], pos["symbol"], float(fr["fundingRate"]) * pos["qty"] * price, ts)
        seen[key] = ts
        booked += 1
    return booked


EXCHANGE_ACTION = "funding.exchange"


def _last_booked(store: Store) -> int | None:
    """Exchange time of the last funding payment booked (or of the first run's start), None on a fresh desk."""
    import json

    from sqlalchemy import select

    from engine.store.schema import audit_log

    with store.connect() as conn:
        row = conn.execute(select(audit_log.c.details).where(audit_log.c.action == EXCHANGE_ACTION)
                           .order_by(audit_log.c.id.desc()).limit(1)).first()
    return None if row is None else int(json.loads(row[0] or "{}").get("time") or 0)


def book_exchange_funding(store: Store, venue: str,
                          fetch_income: Callable[[int | None], list[dict[str, Any]]]) -> int:
    """Book the exchange's funding payments since the last one booked into the instances' sub-ledgers; returns the
    payments booked. `fetch_income(since)` gives ccxt funding-history rows (symbol, amount, timestamp, id; since
    None = the exchange's recent window); a payment for a symbol no instance held at its time is named in an alert,
    not booked. The first run only marks the latest payment on the exchange (in the exchange's own clock) as seen."""
    from engine.execution.margin_share import replay_usdm
    from engine.store.ops import audit

    since = _last_booked(store)
    if since is None:
        latest = max((int(r["timestamp"]) for r in fetch_income(None)), default=0)
        audit(store, "engine", EXCHANGE_ACTION, {"time": latest, "why": "first run: payments after this one"},
              user="engine")
        return 0
    booked = 0
    for row in sorted(fetch_income(since + 1), key=lambda r: (int(r["timestamp"]), str(r.get("id")))):
        ts, symbol, amount = int(row["timestamp"]), str(row["symbol"]), float(row["amount"])
        held = {inst: v[0] for (inst, sym), v in replay_usdm(store, venue, until=ts).items()
                if sym == symbol and abs(v[0]) > 1e-12}
        net = sum(held.values())
        split = {inst: -amount * q / net for inst, q in held.items()} if abs(net) > 1e-12 else {}
        for inst, paid in split.items():  # positive = paid (apply_funding's sign)
            apply_funding(store, inst, symbol, paid, ts)
        if not split and amount:
            raise_alert(store, "warning", "funding.unallocated", f"{symbol}: the exchange settled funding "
                        f"{amount:+.8g} at {ts} but no instance held it then", {"symbol": symbol, "amount": amount})
        audit(store, "engine", EXCHANGE_ACTION, {"time": ts, "tran_id": str(row.get("id")), "symbol": symbol,
                                                "amount": amount, "split": split}, user="engine")
        booked += 1
    return booked
