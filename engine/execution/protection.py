"""Protection lives on the exchange: every live position has a reduce-only protective stop (and a take-profit where
one is set) resting on the exchange itself, so a dead engine still leaves the position protected.

- Levels come from one function, `protective_levels(side, entry, stop_frac, take_frac)`: the instance's strategy
  stop spec when it declares one, else `[risk] protective_stop_pct` / `protective_take_profit_pct`.
- Orders: USD-M STOP_MARKET / TAKE_PROFIT_MARKET with reduceOnly and the instance's quantity (not closePosition: one
  account holds several instances' sub-ledgers, and closePosition would close every instance's share); spot a
  STOP_LOSS_LIMIT sell whose limit sits `protective_limit_offset_pct` past the trigger. A spot position with a
  take-profit gets both as ONE OCO order list (STOP_LOSS_LIMIT + LIMIT_MAKER on the same coins; when one executes
  the exchange expires the other; engine/execution/ccxt_oco.py); it is resized or re-armed as a list (spot: the old
  list comes off first, as it locks the coins) and a flatten pulls it like any protective order.
- Client ids `qd-<instance tag>-ps<digest>` (stop) / `-pt` (take-profit): the instance and the protective marker are
  readable on the exchange, so a restart with a lost order row adopts them instead of cancelling them.
- `Protector.ensure()` runs after every order, every broker poll that recorded fills, every reconciliation and at
  start: a missing order is placed, a wrong-sized or wrong-priced one replaced, one whose position closed canceled.
  A stop already crossed when it is placed (the engine was down while the price went through it) closes the
  position with a reduce-only market order instead, as the exchange would refuse the stop ("would trigger
  immediately").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from engine.clock import now_ms
from engine.execution.ccxt_oco import is_oco_leg
from engine.execution.orders import EPS, OrderBlocked, OrderRequest, instance_tag, open_orders, positions_on_venue
from engine.execution.protective_ids import (MARKERS, oco_client_ids, parse_protective_id,  # noqa: F401 - re-exported
                                             protective_client_id)
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.protection")
PROTECT_REASON = "protect"  # orders.reason prefix (engine.execution.flatten.PROTECTIVE_PREFIX cancels them last)
NOT_PROTECTED = frozenset({"_external"})  # holdings adopted from the account are not ours to protect


@dataclass(frozen=True)
class ProtectionSpec:
    """Stop and take-profit distances of an instance, as fractions of the entry price (take None = no take-profit)."""

    stop_frac: float
    take_frac: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.stop_frac < 1:
            raise ValueError(f"stop_frac: must be in (0, 1), got {self.stop_frac!r}")
        if self.take_frac is not None and not self.take_frac > 0:
            raise ValueError(f"take_frac: must be > 0 or None, got {self.take_frac!r}")


def protective_levels(side: str, entry: float, stop_frac: float,
                      take_frac: float | None = None) -> tuple[float, float | None]:
    """(stop price, take-profit price or None) of a `side` ('long' | 'short') position entered at `entry`."""
    if side not in ("long", "short"):
        raise ValueError(f"side: must be long or short, got {side!r}")
    if not entry > 0:
        raise ValueError(f"entry: must be positive, got {entry!r}")
    sign = 1.0 if side == "long" else -1.0
    stop = entry * (1.0 - sign * stop_frac)
    take = entry * (1.0 + sign * take_frac) if take_frac else None
    return stop, take


def config_spec_of(risk: Any) -> Callable[..., ProtectionSpec]:
    """The config default for every instance (`[risk] protective_stop_pct` / `protective_take_profit_pct`)."""
    spec = ProtectionSpec(float(risk.protective_stop_pct), float(risk.protective_take_profit_pct) or None)
    return lambda _instance_id, _symbol=None: spec


class Protector:
    """Keeps one protective stop (and take-profit) on the exchange per live (instance, symbol) position.

    `broker` is the exchange broker (CcxtBroker: submit, cancel, mark_price, exchange); `spec_of(instance_id, symbol)`
    gives the position's stop spec (strategy first: engine.trading.stops.protection_spec_of; config default
    otherwise)."""

    def __init__(self, store: Store, broker: Any, spec_of: Callable[..., ProtectionSpec],
                 limit_offset: float = 0.01) -> None:
        self.store = store
        self.broker = broker
        self.spec_of = spec_of
        self.limit_offset = float(limit_offset)
        self._warned: set[tuple[str, str, str]] = set()
        self.paused = 0  # > 0 while a flatten runs: it pulls protective orders on purpose and closes the positions

    # --- what should rest -------------------------------------------------------------------------------------
    def _spec(self, instance_id: str, symbol: str) -> ProtectionSpec:
        """spec_of(instance_id, symbol) when it takes the symbol (a vol-scaled strategy stop differs per trade),
        else spec_of(instance_id)."""
        import inspect

        try:
            takes_symbol = len(inspect.signature(self.spec_of).parameters) >= 2
        except (TypeError, ValueError):
            takes_symbol = False
        return self.spec_of(instance_id, symbol) if takes_symbol else self.spec_of(instance_id)

    def _market(self, symbol: str) -> dict[str, Any]:
        return (getattr(self.broker.exchange, "markets", None) or {}).get(symbol) or {}

    def _desired(self, pos: dict[str, Any]) -> list[dict[str, Any]]:
        """The protective orders a position should have: kind, side, qty and trigger price, exchange-rounded."""
        ex, symbol = self.broker.exchange, pos["symbol"]
        if abs(pos["qty"]) < max(self.broker.min_amount(symbol), EPS) * (1 - 1e-9):
            return []  # commission crumbs below the exchange's minimum amount: nothing to protect (nor to close)
        spec = self._spec(pos["instance_id"], symbol)
        side = "long" if pos["qty"] > 0 else "short"
        stop, take = protective_levels(side, float(pos["avg_price"]), spec.stop_frac, spec.take_frac)
        qty = float(ex.amount_to_precision(symbol, abs(pos["qty"])))
        close_side = "sell" if side == "long" else "buy"
        out = [{"kind": "stop", "side": close_side, "qty": qty, "price": float(ex.price_to_precision(symbol, stop))}]
        if take is not None:
            out.append({"kind": "take", "side": close_side, "qty": qty,
                        "price": float(ex.price_to_precision(symbol, take))})
        return out

    def _protectable(self, pos: dict[str, Any], qty: float, price: float) -> bool:
        """False (with one warning per position) for a holding the exchange would refuse to protect (dust)."""
        market = self._market(pos["symbol"])
        min_cost = float(((market.get("limits") or {}).get("cost") or {}).get("min") or 0.0)
        too_small = qty < max(self.broker.min_amount(pos["symbol"]), EPS) or (
            market.get("spot") and qty * price * (1 - self.limit_offset) < min_cost)
        key = (pos["instance_id"], pos["symbol"], f"{qty:.10g}")
        if too_small and key not in self._warned:
            self._warned.add(key)
            raise_alert(self.store, "warning", "protect.too_small", f"{pos['instance_id']} {pos['symbol']} "
                        f"{qty:.8g} is below the exchange's minimum: no protective order can be placed for it",
                        {"instance_id": pos["instance_id"], "symbol": pos["symbol"], "qty": qty})
        return not too_small

    # --- the check --------------------------------------------------------------------------------------------
    def ensure(self, instance_id: str | None = None, symbol: str | None = None) -> dict[str, list[str]]:
        """Bring the exchange's protective orders in line with the live positions; returns what was done."""
        done: dict[str, list[str]] = {"placed": [], "kept": [], "canceled": [], "replaced": [], "closed": [],
                                      "errors": []}
        if self.paused:
            return done
        held = {(p["instance_id"], p["symbol"]): p for p in positions_on_venue(self.store, self.broker.venue)
                if p["instance_id"] not in NOT_PROTECTED}
        resting: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for o in open_orders(self.store, venue=self.broker.venue):
            if str(o.get("reason") or "").startswith(PROTECT_REASON) and o["type"] in ("stop", "take"):
                resting.setdefault((o["instance_id"], o["symbol"]), []).append(o)
        for key in sorted(set(held) | set(resting)):
            if (instance_id and key[0] != instance_id) or (symbol and key[1] != symbol):
                continue
            try:
                self._ensure_one(key, held.get(key), resting.get(key, []), done)
            except Exception as exc:  # noqa: BLE001 - one position failing must not leave the others unchecked
                done["errors"].append(f"{key[0]}/{key[1]}: {type(exc).__name__}: {exc}"[:300])
        for err in done["errors"]:
            raise_alert(self.store, "critical", "protect.failed", f"protective order: {err}"[:500], {"error": err})
        return done

    def _ensure_one(self, key: tuple[str, str], pos: dict[str, Any] | None, resting: list[dict[str, Any]],
                    done: dict[str, list[str]]) -> None:
        desired = self._desired(pos) if pos is not None and abs(pos["qty"]) > EPS else []
        if desired and not self._protectable(pos, desired[0]["qty"], desired[0]["price"]):  # type: ignore[arg-type]
            desired = []
        wanted = {d["kind"]: d for d in desired}
        spot = bool(self._market(key[1]).get("spot"))
        if spot and pos is not None and ("take" in wanted or any(is_oco_leg(o) for o in resting)):
            self._ensure_oco(pos, wanted, resting, done)
            return
        stale = []
        for o in resting:
            if self._matches(o, wanted.get(o["type"])):
                wanted.pop(o["type"])
                done["kept"].append(o["client_order_id"])
            else:
                stale.append(o)
        # USD-M: the new order goes on before the old comes off (never a moment unprotected); spot must pull the old
        # first, as it locks the base asset the new one needs
        replacing: dict[str, dict[str, Any]] = {}
        if spot and hasattr(self.broker, "replace_protective"):  # spot: swap old for new in one request
            for o in list(stale):
                if o["type"] in wanted and o["type"] not in replacing and o.get("status") == "open":
                    replacing[o["type"]] = o
                    stale.remove(o)
        if spot:  # what is not swapped must come off first: it locks the base asset the new order needs
            self._cancel(stale, done)
        if wanted:
            assert pos is not None
            self._place(pos, wanted, done, replacing)
        for o in replacing.values():  # not swapped after all (e.g. the stop was crossed): pull it
            if o["client_order_id"] not in done["canceled"] and o["client_order_id"] not in done["replaced"]:
                self._cancel([o], done)
        if not spot:  # USD-M: the new order went on before the old comes off (never a moment unprotected)
            self._cancel(stale, done)

    def _ensure_oco(self, pos: dict[str, Any], wanted: dict[str, dict[str, Any]], resting: list[dict[str, Any]],
                    done: dict[str, list[str]]) -> None:
        """Spot with a take-profit: the stop and take-profit rest as one OCO list. Both legs as wanted: kept. A lone
        stop as wanted while the take-profit would fill at once: kept (no churn). Anything else: what rests comes
        off (it locks the coins) and a new list (or the stop alone) goes on."""
        same = {o["type"]: o for o in resting if self._matches(o, wanted.get(o["type"]))}
        if len(resting) == len(same) == len(wanted) == 2 and all(is_oco_leg(o) for o in resting):
            done["kept"].extend(o["client_order_id"] for o in resting)
            return
        if list(same) == ["stop"] and len(resting) == 1 and not is_oco_leg(resting[0]) and "take" in wanted:
            mark = self.broker.mark_price(pos["symbol"])
            if self._take_fills_now(pos, wanted["take"], mark):
                done["kept"].append(resting[0]["client_order_id"])
                return
        self._cancel(resting, done)
        if wanted:
            self._place(pos, wanted, done)

    @staticmethod
    def _matches(order: dict[str, Any], d: dict[str, Any] | None) -> bool:
        """A resting protective order is the one wanted: side, quantity and level."""
        return d is not None and order["side"] == d["side"] and abs(order["qty"] - d["qty"]) <= EPS * max(
            1.0, d["qty"]) and abs((order["price"] or 0.0) - d["price"]) <= 1e-9 * d["price"]

    @staticmethod
    def _take_fills_now(pos: dict[str, Any], take: dict[str, Any], mark: float) -> bool:
        """The market is already at or beyond the take-profit level (placing it would fill or be refused)."""
        return mark >= take["price"] if pos["qty"] > 0 else mark <= take["price"]

    def _cancel(self, orders: list[dict[str, Any]], done: dict[str, list[str]]) -> None:
        for o in orders:
            if self.broker.cancel(o["client_order_id"]):
                done["canceled"].append(o["client_order_id"])

    def _place(self, pos: dict[str, Any], wanted: dict[str, dict[str, Any]], done: dict[str, list[str]],
               replacing: dict[str, dict[str, Any]] | None = None) -> None:
        mark = self.broker.mark_price(pos["symbol"])
        long = pos["qty"] > 0
        stop = wanted.get("stop")
        if stop is not None and (mark <= stop["price"] if long else mark >= stop["price"]):
            self._close_crossed(pos, stop, mark, done)
            return
        take = wanted.get("take")
        if stop is not None and take is not None and self._market(pos["symbol"]).get("spot") \
                and not self._take_fills_now(pos, take, mark):
            self._place_oco(pos, stop, take, done)
            return
        for kind, d in wanted.items():
            if kind == "take" and self._take_fills_now(pos, d, mark):
                continue  # would trigger at once; the stop protects, the strategy or the next check takes profit
            coid = protective_client_id(pos["instance_id"], pos["symbol"], kind, now_ms())
            req = OrderRequest(instance_id=pos["instance_id"], symbol=pos["symbol"], side=d["side"], qty=d["qty"],
                               client_order_id=coid, type=kind, price=d["price"], reduce_only=True, intent="protect",
                               reason=f"{PROTECT_REASON} {kind} {d['qty']:.8g} {pos['symbol']} @ {d['price']:.8g}")
            old = (replacing or {}).get(kind)
            row = self.broker.replace_protective(old, req) if old is not None else self.broker.submit(req)
            if old is not None:
                done["replaced"].append(old["client_order_id"])
            if row.get("status") in ("rejected", "canceled"):
                done["errors"].append(f"{coid} {row.get('status')}: {row.get('reason')}"[:300])
            else:
                done["placed"].append(coid)

    def _place_oco(self, pos: dict[str, Any], stop: dict[str, Any], take: dict[str, Any],
                   done: dict[str, list[str]]) -> None:
        """Spot stop + take-profit as one OCO list (engine/execution/ccxt_oco.py)."""
        from engine.execution.ccxt_oco import OCO_REASON

        ids = oco_client_ids(pos["instance_id"], pos["symbol"], now_ms())
        reqs = [OrderRequest(instance_id=pos["instance_id"], symbol=pos["symbol"], side=d["side"], qty=d["qty"],
                             client_order_id=coid, type=kind, price=d["price"], reduce_only=True, intent="protect",
                             reason=f"{OCO_REASON} {kind} {d['qty']:.8g} {pos['symbol']} @ {d['price']:.8g}")
                for coid, kind, d in zip(ids, ("stop", "take"), (stop, take))]
        for row in self.broker.submit_oco(*reqs):
            if row.get("status") in ("rejected", "canceled"):
                done["errors"].append(f"{row.get('client_order_id')} {row.get('status')}: {row.get('reason')}"[:300])
            else:
                done["placed"].append(str(row.get("client_order_id")))

    def _close_crossed(self, pos: dict[str, Any], stop: dict[str, Any], mark: float,
                       done: dict[str, list[str]]) -> None:
        """The price is already through the stop: close the position now (reduce-only market), as the stop would."""
        coid = protective_client_id(pos["instance_id"], pos["symbol"], "close", now_ms())
        req = OrderRequest(instance_id=pos["instance_id"], symbol=pos["symbol"], side=stop["side"], qty=stop["qty"],
                           client_order_id=coid, reduce_only=True, intent="protect",
                           reason=f"stop crossed: mark {mark:.8g} beyond stop {stop['price']:.8g}")
        try:
            self.broker.submit(req)
            done["closed"].append(coid)
        except OrderBlocked as exc:
            done["errors"].append(f"close {pos['instance_id']}/{pos['symbol']}: {exc}"[:300])
        raise_alert(self.store, "critical", "protect.stop_crossed", f"{pos['instance_id']} {pos['symbol']}: mark "
                    f"{mark:.8g} is beyond its stop {stop['price']:.8g} with no stop resting; closed at market",
                    {"instance_id": pos["instance_id"], "symbol": pos["symbol"], "mark": mark,
                     "stop": stop["price"]})

    # --- start-up: our protective orders state.db lost ---------------------------------------------------------
    def adoptable(self, order: dict[str, Any], symbol: str) -> str | None:
        """The instance an exchange order of ours (client id with the protective marker) protects, when that instance
        holds the symbol on the exchange now; None otherwise (then it is an orphan to cancel)."""
        parsed = parse_protective_id(str(order.get("clientOrderId") or ""))
        if parsed is None:
            return None
        tag, _kind = parsed
        for p in positions_on_venue(self.store, self.broker.venue):
            if p["symbol"] == symbol and instance_tag(p["instance_id"]) == tag \
                    and p["instance_id"] not in NOT_PROTECTED:
                return str(p["instance_id"])
        return None
