"""Funding of perpetual positions booked into each instance's sub-ledger, for either venue.

Paper: the paper broker's only source of funding cash. Exchange: the account is settled by the exchange; booking the
same payment per instance keeps each sub-ledger's P&L right, and the account-level reconciliation sees the sum.
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
