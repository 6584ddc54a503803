"""The USD-M wallet on one account, reconciled per instance: each instance's realised P&L and commissions on its
perpetual fills against the exchange's futures wallet balance (issue 13; engine/execution/quote_share.py does the
same for the spot quote currency).

The wallet moves only by realised P&L, commissions, funding and transfers. Per instance the sub-ledger knows its
realised P&L and fees (replayed from its USD-M fills on the exchange venue); funding comes from the exchange's own
income history (GET /fapi/v1/income FUNDING_FEE since the baseline; read at the first check and again only when a
check does not add up, as it weighs 30), as the engine's per-instance funding booking is an estimate. One account nets every instance into one position per symbol, and the exchange realises P&L on that
net position: instances long and short the same perp realise nothing each while the exchange realises on the net.
Cash is conserved either way, so the difference is exactly, price-free,

    netting = sum over symbols of (exchange qty x exchange entry price - sum over instances of qty x avg price)

and each check is

    wallet == external + sum over instances (realised - fees) + netting + funding since the baseline

with `external` recorded once (audit `recon.margin_external`, with the baseline time). A difference on two
consecutive checks raises a critical `recon.margin_mismatch` naming the amount and is adopted into external, as the
quote check does. Positions adopted into `_external` at a price the exchange never traded show up here once.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from sqlalchemy import select

from engine.store.db import Store
from engine.store.ops import audit, raise_alert
from engine.store.schema import audit_log, fills, orders

EXTERNAL_ACTION = "recon.margin_external"


def replay_usdm(store: Store, venue: str, until: int | None = None) -> dict[tuple[str, str], list[float]]:
    """{(instance, USD-M symbol): [qty, avg price, realised, fees]} replayed from the fills on `venue` (average cost,
    as the exchange and the sub-ledger both account), up to fill time `until` when given. Not read from the positions
    table: a position row also carries what the instance realised on paper before its promotion."""
    stmt = (select(fills.c.instance_id, fills.c.symbol, fills.c.side, fills.c.qty, fills.c.price, fills.c.fee)
            .select_from(fills.join(orders, orders.c.client_order_id == fills.c.client_order_id))
            .where(orders.c.venue == venue, fills.c.symbol.like("%:%")).order_by(fills.c.id))
    if until is not None:
        stmt = stmt.where(fills.c.ts <= until)
    book: dict[tuple[str, str], list[float]] = {}
    with store.connect() as conn:
        for inst, symbol, side, qty, price, fee in conn.execute(stmt):
            q, avg, realised, fees = book.setdefault((inst, symbol), [0.0, 0.0, 0.0, 0.0])
            d, px = (float(qty) if side == "buy" else -float(qty)), float(price)
            if q == 0 or (q > 0) == (d > 0):
                avg = (abs(q) * avg + abs(d) * px) / abs(q + d)
            else:
                realised += min(abs(q), abs(d)) * (px - avg) * (1 if q > 0 else -1)
                if abs(q + d) < 1e-12:
                    avg = 0.0
                elif (q + d > 0) != (q > 0):
                    avg = px
            book[(inst, symbol)] = [q + d, avg, realised, fees + float(fee or 0.0)]
    return book


def margin_shares(store: Store, venue: str) -> tuple[dict[str, float], float]:
    """({instance: realised P&L - fees of its USD-M fills on `venue`}, sum of qty x avg price of what they hold)."""
    book = replay_usdm(store, venue)
    shares: dict[str, float] = {}
    for (inst, _symbol), (_q, _avg, realised, fees) in book.items():
        shares[inst] = shares.get(inst, 0.0) + realised - fees
    return shares, sum(q * avg for q, avg, _r, _f in book.values())


def _baseline(store: Store, asset: str) -> dict[str, Any] | None:
    with store.connect() as conn:
        rows = conn.execute(select(audit_log.c.details).where(audit_log.c.action == EXTERNAL_ACTION)
                            .order_by(audit_log.c.id.desc())).all()
    for (details,) in rows:
        d = json.loads(details or "{}")
        if d.get("asset") == asset:
            return d
    return None


class MarginShares:
    """The USD-M wallet check of one exchange broker (keeps the previous difference to confirm a mismatch)."""

    def __init__(self, store: Store, venue: str) -> None:
        self.store = store
        self.venue = venue
        self._pending: float | None = None
        self._funding: tuple[int, float] | None = None  # (baseline, funding since it) last read from the exchange

    def check(self, asset: str, wallet: float, exchange_cost: float, funding_since: Callable[[int], float],
              now: int, tolerance: float) -> dict[str, Any]:
        """Compare the exchange's wallet balance with external + instance shares + netting + funding.

        `exchange_cost` is the sum over the account's USD-M positions of qty x entry price; `funding_since(ts)` the
        account's FUNDING_FEE income from ts on (negative = paid)."""
        shares, held_cost = margin_shares(self.store, self.venue)
        netting = exchange_cost - held_cost
        base = _baseline(self.store, asset)
        if base is None:
            base = {"asset": asset, "external": wallet - sum(shares.values()) - netting, "since": now,
                    "account": wallet, "why": "first reconciliation"}
            audit(self.store, "engine", EXTERNAL_ACTION, base, user="engine")
        since = int(base["since"])
        cached = self._funding is not None and self._funding[0] == since
        funding = self._funding[1] if cached and self._funding is not None else self._read(funding_since, since, now)
        explained = float(base["external"]) + sum(shares.values()) + netting + funding
        diff = wallet - explained
        if abs(diff) > tolerance and cached:  # a funding time may have passed: read the income again (weight 30)
            funding = self._read(funding_since, since, now)
            explained = float(base["external"]) + sum(shares.values()) + netting + funding
            diff = wallet - explained
        out: dict[str, Any] = {"asset": asset, "wallet": wallet, "external": float(base["external"]),
                               "instances": {k: round(v, 8) for k, v in sorted(shares.items())},
                               "netting": round(netting, 8), "funding": round(funding, 8), "diff": diff}
        if abs(diff) <= tolerance:
            self._pending = None
            return out
        if self._pending is None or abs(self._pending - diff) > tolerance:  # confirm on the next check
            self._pending = diff
            out["pending"] = True
            return out
        self._pending = None
        raise_alert(self.store, "critical", "recon.margin_mismatch", f"USD-M {asset}: the wallet holds {wallet:,.8g} "
                    f"but external + the instances' realised P&L and fees + netting + funding explain "
                    f"{explained:,.8g}; {diff:+,.8g} {asset} adopted as external",
                    {"asset": asset, "diff": diff, "wallet": wallet})
        audit(self.store, "engine", EXTERNAL_ACTION, {**base, "external": float(base["external"]) + diff,
                                                     "account": wallet, "why": f"unexplained {diff:+.8g}"},
              user="engine")
        out["mismatch"] = diff
        return out


    def _read(self, funding_since: Callable[[int], float], since: int, now: int) -> float:
        """The account's funding since the baseline, from the exchange (kept until a check does not add up)."""
        value = funding_since(since) if now > since else 0.0
        self._funding = (since, value)
        return value


class UsdmWallet:
    """Mixin of CcxtBroker: the USD-M wallet check and USD-M commissions (uses store, exchange, venue, _call)."""

    store: Any
    exchange: Any
    venue: str
    _margin_shares: Any = None
    _last_positions: list[dict[str, Any]] | None = None

    def _usdm_fee(self, order: dict[str, Any]) -> float | None:
        """Binance USD-M order answers carry no commission: the order's trades (userTrades by orderId) do. None for
        other markets or when the order already says its fee."""
        symbol = order.get("symbol")
        if not symbol or ":" not in str(symbol) or not order.get("id"):
            return None
        if any(f and f.get("cost") is not None for f in (order.get("fees") or [order.get("fee")])):
            return None
        trades = self._call(f"userTrades {order['id']}", lambda: self.exchange.fetch_my_trades(
            symbol, None, None, {"orderId": str(order["id"])}))  # ccxt's fetch_order_trades is spot-only here
        return sum(float((t.get("fee") or {}).get("cost") or 0.0) for t in trades)

    def _check_margin(self, swaps: Iterable[str]) -> list[dict[str, Any]]:
        """The USD-M wallet against the instances' shares (after `_holdings` read the positions)."""
        swaps = list(swaps)
        if not swaps or self._last_positions is None:
            return []
        if self._margin_shares is None:
            self._margin_shares = MarginShares(self.store, self.venue)
        bal = self._call("fetch_balance future", lambda: self.exchange.fetch_balance({"type": "future"}))
        assets = {a.get("asset"): a for a in (bal.get("info") or {}).get("assets") or []}
        wallet = float((assets.get("USDT") or {}).get("walletBalance") or 0.0)
        cost = sum((-1 if p.get("side") == "short" else 1) * float(p.get("contracts") or 0.0)
                   * float(p.get("entryPrice") or 0.0) for p in self._last_positions)

        def funding_since(ts: int) -> float:
            rows = self._call("income FUNDING_FEE", lambda: self.exchange.fapiPrivateGetIncome(
                {"incomeType": "FUNDING_FEE", "startTime": ts, "limit": 1000}))
            return sum(float(r.get("income") or 0.0) for r in rows if r.get("asset") == "USDT")

        return [self._margin_shares.check("USDT", wallet, cost, funding_since, int(self.exchange.milliseconds()),
                                          0.01)]
