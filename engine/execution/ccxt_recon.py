"""Reconciliation for CcxtBroker: exchange holdings against the exchange-venue sub-ledgers in state.db.

Every cycle (and at start): sync open orders, read the account's holdings (spot base totals, USD-M positions),
compare them with the sum of the instances' sub-ledgers on the exchange, adopt an unexplained holding into the
`_external` instance (with a fill, so positions stay the sum of fills) and raise `recon.mismatch`; then the
protective-order check. A mixin, so the submit lock serialises it with orders in flight.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.execution.orders import Fill, OrderRequest, insert_order, positions_on_venue, record_fill
from engine.store.ops import raise_alert

EXTERNAL_INSTANCE = "_external"


class Reconciliation:
    """Mixin of CcxtBroker (uses its store, exchange, symbols, venue, _lock, _call, process, _protect, mark_price)."""

    store: Any
    exchange: Any
    symbols: list[str]
    venue: str
    _lock: Any
    _last_balance: dict[str, Any] | None = None  # the spot balance read by the last reconciliation
    _quote_shares: Any = None
    _last_positions: list[dict[str, Any]] | None = None  # the USD-M positions read by the last reconciliation

    # --- reconciliation -------------------------------------------------------------------------------------------
    def _holdings(self, symbols: list[str]) -> dict[str, float]:
        """Signed exchange holdings per symbol: spot base-currency totals, swap positions."""
        out: dict[str, float] = {}
        spot = [s for s in symbols if ":" not in s]
        swaps = [s for s in symbols if ":" in s]
        if spot:
            bal = self._call("fetch_balance", self.exchange.fetch_balance)
            self._last_balance = bal
            for s in spot:
                base = self.exchange.markets[s]["base"]
                out[s] = float((bal.get(base) or {}).get("total") or 0.0)
        if swaps:
            self._last_positions = self._call("fetch_positions", lambda: self.exchange.fetch_positions(swaps))
            for p in self._last_positions:
                sign = -1 if p.get("side") == "short" else 1
                out[p["symbol"]] = out.get(p["symbol"], 0.0) + sign * float(p.get("contracts") or 0.0)
        return out

    def reconcile(self) -> dict[str, Any]:
        """Sync open orders, then adopt (and alert on) exchange holdings that state.db does not explain.

        Runs under the submit lock: a holding read while an order's fill is on its way back would otherwise look
        unexplained and be adopted (seen on the twin: a buy adopted as external, then reversed a second later)."""
        with self._lock:
            return self._reconcile_locked()

    def _reconcile_locked(self) -> dict[str, Any]:
        if getattr(self.exchange, "markets", None) is None:
            self._call("load_markets", self.exchange.load_markets)
        synced = self.process()
        self._last_balance = None
        self._last_positions = None
        # paper instances' virtual positions are not on the account: only exchange-venue sub-ledgers are compared
        mine = positions_on_venue(self.store, self.venue)
        symbols = sorted(set(self.symbols) | {p["symbol"] for p in positions_on_venue(self.store, self.venue, False)})
        holdings = self._holdings(symbols) if symbols else {}
        local: dict[str, float] = {}
        for p in mine:
            local[p["symbol"]] = local.get(p["symbol"], 0.0) + p["qty"]
        adopted = []
        for symbol, qty in holdings.items():
            diff = qty - local.get(symbol, 0.0)
            market = self.exchange.markets[symbol]
            min_amt = ((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0
            if abs(diff) <= max(min_amt or 0.0, 1e-9):
                continue
            self._adopt(symbol, diff)
            adopted.append({"symbol": symbol, "exchange": qty, "state_db": local.get(symbol, 0.0), "adopted": diff})
        for a in adopted:
            raise_alert(self.store, "critical", "recon.mismatch", f"{a['symbol']}: exchange holds {a['exchange']} "
                        f"but state.db had {a['state_db']}; adopted {a['adopted']} into {EXTERNAL_INSTANCE}", a)
        return {"orders_synced": synced, "adopted": adopted, "symbols": symbols, "quote": self._check_quote(symbols),
                "margin": self._check_margin([s for s in symbols if ":" in s]), "protection": self._protect()}

    def _check_quote(self, symbols: list[str]) -> list[dict[str, Any]]:
        """Each spot quote currency's account total against the instances' cash shares (engine/execution/
        quote_share.py); tolerance: a cent per 100 fills' rounding, at least 0.01."""
        from engine.execution.quote_share import QuoteShares

        bal = getattr(self, "_last_balance", None)
        quotes = sorted({self.exchange.markets[s]["quote"] for s in symbols if ":" not in s})
        if bal is None or not quotes:
            return []
        if getattr(self, "_quote_shares", None) is None:
            self._quote_shares = QuoteShares(self.store, self.venue)
        return [self._quote_shares.check(q, float((bal.get(q) or {}).get("total") or 0.0), 0.01) for q in quotes]

    def _adopt(self, symbol: str, qty: float) -> None:
        """Record an unexplained holding as an external order + fill, so positions stay the sum of fills."""
        ts = self.exchange.milliseconds()
        coid = f"qd-recon-{ts}-{hashlib.sha1(symbol.encode()).hexdigest()[:6]}"
        price = self.mark_price(symbol)
        req = OrderRequest(instance_id=EXTERNAL_INSTANCE, symbol=symbol, side="buy" if qty > 0 else "sell",
                           qty=abs(qty), client_order_id=coid, reason="reconciliation: found on exchange")
        insert_order(self.store, req, ts, status="new", venue=self.venue)
        record_fill(self.store, Fill(fill_id=f"{coid}:recon", client_order_id=coid, instance_id=EXTERNAL_INSTANCE,
                                     symbol=symbol, side=req.side, qty=abs(qty), price=price, fee=0.0,
                                     liquidity="taker", ts=ts), final_status="filled")
