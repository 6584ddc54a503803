"""Cash shares on one account: each instance's quote-currency (USDT) share reconciled against the exchange, not
only its base holdings.

Every spot fill moves the account's quote balance: a buy pays qty x price, a sell receives it, less the part of the
fee paid in quote. Per instance that flow is its cash share's change; what the account holds beyond all instances'
flows is the account's own (external) quote, recorded once at the first reconciliation as an audit row
(`recon.quote_external`). Each reconciliation checks

    account quote total == external quote + sum of every exchange instance's quote flow

A difference (a deposit, a withdrawal, a trade or fee this desk did not book) seen on two consecutive checks -- one
can be a fill on its way back -- raises a critical `recon.quote_mismatch` alert naming the amount, and is adopted into
the external quote (a new audit row), so it is reported once, like an adopted holding.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, select

from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import audit_log, fills, orders

EXTERNAL_ACTION = "recon.quote_external"


def quote_flows(store: Store, venue: str, quote: str) -> dict[str, float]:
    """Quote-currency flow per instance of every spot fill on `venue` in `quote` (adoption fills excluded: no quote
    moved for them)."""
    stmt = (select(fills.c.instance_id, fills.c.symbol, fills.c.side, fills.c.qty, fills.c.price, fills.c.fee,
                   fills.c.fee_base)
            .select_from(fills.join(orders, and_(orders.c.client_order_id == fills.c.client_order_id)))
            .where(orders.c.venue == venue, ~fills.c.client_order_id.like("qd-recon-%")))
    out: dict[str, float] = {}
    with store.connect() as conn:
        for inst, symbol, side, qty, price, fee, fee_base in conn.execute(stmt):
            if ":" in symbol or symbol.split("/")[-1] != quote:
                continue
            quote_fee = float(fee or 0.0) - float(fee_base or 0.0) * float(price)
            flow = float(qty) * float(price) * (1 if side == "sell" else -1) - quote_fee
            out[inst] = out.get(inst, 0.0) + flow
    return out


def external_quote(store: Store, quote: str) -> float | None:
    """The account's own quote (not any instance's flow) as last recorded; None before the first reconciliation."""
    with store.connect() as conn:
        rows = conn.execute(select(audit_log.c.details).where(audit_log.c.action == EXTERNAL_ACTION)
                            .order_by(audit_log.c.id.desc())).all()
    for (details,) in rows:
        d = json.loads(details or "{}")
        if d.get("asset") == quote:
            return float(d["external"])
    return None


class QuoteShares:
    """The quote-share check of one exchange broker (keeps the previous difference to confirm a mismatch)."""

    def __init__(self, store: Store, venue: str) -> None:
        self.store = store
        self.venue = venue
        self._pending: dict[str, float] = {}

    def check(self, quote: str, total: float, tolerance: float) -> dict[str, Any]:
        """Compare the account's quote `total` with external + instance flows; returns the shares and any mismatch."""
        flows = quote_flows(self.store, self.venue, quote)
        ext = external_quote(self.store, quote)
        if ext is None:
            ext = total - sum(flows.values())
            audit(self.store, "engine", EXTERNAL_ACTION, {"asset": quote, "external": ext, "account": total,
                                                         "why": "first reconciliation"}, user="engine")
        diff = total - (ext + sum(flows.values()))
        out: dict[str, Any] = {"asset": quote, "account": total, "external": ext,
                               "instances": {k: round(v, 8) for k, v in sorted(flows.items())}, "diff": diff}
        if abs(diff) <= tolerance:
            self._pending.pop(quote, None)
            return out
        prev = self._pending.get(quote)
        if prev is None or abs(prev - diff) > tolerance:  # first sighting (or it moved): confirm on the next check
            self._pending[quote] = diff
            out["pending"] = True
            return out
        self._pending.pop(quote, None)
        raise_alert(self.store, "critical", "recon.quote_mismatch", f"{quote}: the account holds {total:,.8g} but "
                    f"external {ext:,.8g} + the instances' flows {sum(flows.values()):,.8g} explain "
                    f"{ext + sum(flows.values()):,.8g}; {diff:+,.8g} {quote} adopted as external",
                    {"asset": quote, "diff": diff, "account": total})
        audit(self.store, "engine", EXTERNAL_ACTION, {"asset": quote, "external": ext + diff, "account": total,
                                                     "why": f"unexplained {diff:+.8g}"}, user="engine")
        out["mismatch"] = diff
        return out
