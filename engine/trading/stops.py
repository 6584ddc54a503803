"""A strategy's protective stops on the paper path (intrabar, on stored 1m bars) and as the live path's levels.

Paper: when the trader opens (or flips) a position, `StopWatch.arm` fixes the trade's stop / take-profit fractions
from the strategy's `stops()` at the decision bar, as the backtest kernel does. `StopWatch.check` then walks every
closed bar since the entry (1m bars when the store has them, else the instance's own bars), and the first bar whose
range reaches a level closes the position through `PaperBroker.fill_at` at the price `engine.strategy.stops.bar_exit`
gives: the level, or the open when the bar gapped through it; stop before take-profit (the kernel's rule). A stop is
taker and fills at that price moved against the position by the backtest's half spread + square-root impact
(engine.backtest.fill_price, with the kernel's sigma and previous-bar volume of the instance's timeframe), a
take-profit is maker at its level; the order's reason keeps the untouched trigger price. After an exit the symbol stays flat until the strategy's weight changes (the kernel
trades only a changed target), see `blocks`.

Live: protection rests on the exchange (engine.execution.protection); `protection_spec_of` gives the Protector each
instance's levels from its strategy's spec (the fractions armed at entry), the config default otherwise.

The armed fractions ride in the entry order's reason in state.db, so after an engine restart `restore` re-arms an
open position exactly and checks the bars since its entry (a stop crossed while the engine was down fills at its
level on that bar, as the backtest would). A position with no such record (entered by an older engine) is armed
from "now" with the spec's fractions at the latest bar. The trade tape is not used: 1m bars are the finest
granularity checked.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from engine.clock import floor_ts, timeframe_ms
from engine.execution.orders import OrderBlocked, OrderRequest, client_order_id, load_positions
from engine.store.candles import load_candles
from engine.store.db import Store
from engine.strategy.stops import STOP, TAKE, Stops, bar_exit

log = logging.getLogger("quantdesk.stops")
CHECK_TIMEFRAME = "1m"


@dataclass(frozen=True)
class Armed:
    """One open trade's protective exit: its side, the fractions fixed at entry and the first bar to check."""

    side: float
    stop_frac: float
    take_frac: float
    since: int  # open time (ms) of the first bar that can trigger it (the bar the entry filled in)
    weight: float = 0.0  # the strategy's weight that opened the trade (flat after an exit until it changes)

    def tag(self) -> str:
        """What the entry order's reason carries, so a restarted engine re-arms the trade exactly (`restore`)."""
        return f" stops sl={self.stop_frac!r} tp={self.take_frac!r} w={self.weight!r}"


_NUM = r"([0-9.eE+-]+|nan|inf|-inf)"
_TAG = re.compile(rf" stops sl={_NUM} tp={_NUM} w={_NUM}")
_EXIT_W = re.compile(rf"^(?:{STOP}|{TAKE}) at bar .* w={_NUM}$")


class StopWatch:
    """Arms, checks and fires the protective exits of paper positions; remembers exits until the weight changes."""

    def __init__(self, store: Store, source_id: str, costs: Any = None) -> None:
        self.store = store
        self.source_id = source_id
        self.costs = costs  # BacktestConfig: the spread / impact a stop pays (None: none)
        self.armed: dict[tuple[str, str], Armed] = {}
        self.exited: dict[tuple[str, str], float] = {}  # (instance, symbol) -> the weight in force when it exited
        self._looked_up: set[tuple[str, str]] = set()  # keys whose last protective exit was read from state.db

    def arm(self, instance_id: str, symbol: str, side: float, stops: Stops, panel: Mapping[str, Any],
            decision_ts: int, fill_ts: int, timeframe: str, weight: float = 0.0) -> Armed | None:
        """Fix a new trade's fractions from `stops` at the decision bar; None when the spec sets nothing here."""
        import pandas as pd

        when = pd.Timestamp(decision_ts, unit="ms", tz="UTC")
        sl, tp = stops.fractions_at(panel, symbol, when) if symbol in panel or stops.scale == "fixed" else (0.0, 0.0)
        if sl <= 0.0 and tp <= 0.0:
            self.armed.pop((instance_id, symbol), None)
            return None
        armed = Armed(1.0 if side > 0 else -1.0, sl, tp, floor_ts(fill_ts, self.check_timeframe(symbol, timeframe)),
                      float(weight))
        self.armed[(instance_id, symbol)] = armed
        return armed

    def restore(self, instance_id: str, symbol: str, side: float, timeframe: str) -> Armed | None:
        """Re-arm an open position from its entry order in state.db (after a restart); None without a record.

        The latest filled, not reduce-only order of that side whose reason carries the armed fractions; its bars
        since entry are then checked, so a stop hit while the engine was down fills at its level on that bar."""
        from sqlalchemy import select

        from engine.store.schema import orders

        with self.store.connect() as conn:
            row = conn.execute(select(orders.c.reason, orders.c.created_at).where(
                orders.c.instance_id == instance_id, orders.c.symbol == symbol, orders.c.reduce_only == 0,
                orders.c.side == ("buy" if side > 0 else "sell"), orders.c.filled_qty > 0,
                orders.c.reason.like("% stops sl=%")).order_by(orders.c.created_at.desc()).limit(1)).first()
        match = _TAG.search(row[0]) if row is not None else None
        if match is None:
            return None
        armed = Armed(side, float(match.group(1)), float(match.group(2)),
                      floor_ts(int(row[1]), self.check_timeframe(symbol, timeframe)), float(match.group(3)))
        self.armed[(instance_id, symbol)] = armed
        return armed

    def check_timeframe(self, symbol: str, timeframe: str) -> str:
        """1m when the store holds 1m bars of the symbol, else the instance's own timeframe."""
        with self.store.connect() as conn:
            has = conn.exec_driver_sql(
                "SELECT 1 FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ? LIMIT 1"
                if self.store.is_sqlite else
                "SELECT 1 FROM candles WHERE exchange = %s AND symbol = %s AND timeframe = %s LIMIT 1",
                (self.source_id, symbol, CHECK_TIMEFRAME)).first()
        return CHECK_TIMEFRAME if has is not None else timeframe

    def blocks(self, instance_id: str, symbol: str, weight: float) -> bool:
        """True while the weight in force at a protective exit is unchanged (the position stays flat)."""
        key = (instance_id, symbol)
        if key not in self.exited and key not in self._looked_up:
            self._looked_up.add(key)  # after a restart: was the last order of this symbol a protective exit?
            self._last_exit(instance_id, symbol)
        if key not in self.exited:
            return False
        # unchanged up to float noise: each tick recomputes the weights on a panel starting one bar later
        if math.isclose(weight, self.exited[key], rel_tol=1e-6, abs_tol=1e-12):
            return True
        del self.exited[key]
        return False

    def check(self, instance_id: str, timeframe: str, broker: Any, now: int, stops: Stops | None,
              panel: Mapping[str, Any] | None = None, weights: Mapping[str, float] | None = None) -> list[dict]:
        """Fire the exits hit by bars closed before `now`; returns one record per exit (symbol, reason, bar, price)."""
        out: list[dict] = []
        held = {p["symbol"]: p for p in load_positions(self.store, instance_id)}
        for key in [k for k in self.armed if k[0] == instance_id and k[1] not in held]:
            del self.armed[key]  # closed by a signal (or flattened): nothing left to protect
        if stops is None:
            return out
        for symbol, pos in held.items():
            key = (instance_id, symbol)
            side = 1.0 if pos["qty"] > 0 else -1.0
            armed = self.armed.get(key)
            if armed is None or armed.side != side:
                armed = self.restore(instance_id, symbol, side, timeframe)
            if armed is None:  # no record of the entry: arm from now with the spec as it is today
                tf = self.check_timeframe(symbol, timeframe)
                armed = self.arm(instance_id, symbol, side, stops, panel or {}, floor_ts(now, tf) - timeframe_ms(tf),
                                 now, timeframe)
                if armed is None:
                    continue
            hit = self._first_hit(symbol, armed, float(pos["avg_price"]), timeframe, now)
            if hit is None:
                continue
            reason, bar_ts, price = hit
            fill_ts = min(now, bar_ts + timeframe_ms(self.check_timeframe(symbol, timeframe)) - 1)  # inside the bar
            w_now = float((weights or {}).get(symbol, armed.weight))
            exit_ = self._fire(broker, instance_id, symbol, pos["qty"], reason, bar_ts, price, fill_ts, w_now,
                               timeframe)
            if exit_ is not None:
                out.append(exit_)
                del self.armed[key]
                self.exited[key] = float((weights or {}).get(symbol, armed.weight))
        return out

    def _last_exit(self, instance_id: str, symbol: str) -> None:
        """Restore `exited` from state.db: the symbol is flat and its last order was a protective exit."""
        from sqlalchemy import select

        from engine.execution.orders import position_qty
        from engine.store.schema import orders

        if abs(position_qty(self.store, instance_id, symbol)) > 1e-12:
            return
        with self.store.connect() as conn:
            reason = conn.execute(select(orders.c.reason).where(
                orders.c.instance_id == instance_id, orders.c.symbol == symbol, orders.c.filled_qty > 0)
                .order_by(orders.c.created_at.desc(), orders.c.client_order_id).limit(1)).scalar()
        match = _EXIT_W.match(str(reason or ""))
        if match is not None:
            self.exited[(instance_id, symbol)] = float(match.group(1))

    def _first_hit(self, symbol: str, armed: Armed, entry: float, timeframe: str,
                   now: int) -> tuple[str, int, float] | None:
        tf = self.check_timeframe(symbol, timeframe)
        until = floor_ts(now, tf)  # bars that have closed
        if until <= armed.since:
            return None
        bars = load_candles(self.store, self.source_id, symbol, tf, since=armed.since, until=until)
        if bars.empty:
            return None
        ts = bars.index.as_unit("ms").asi8
        o, h, lo = (bars[c].to_numpy() for c in ("open", "high", "low"))
        for i in range(len(ts)):
            hit = bar_exit(armed.side, entry, armed.stop_frac, armed.take_frac, float(o[i]), float(h[i]),
                           float(lo[i]))
            if hit is not None:
                return hit[0], int(ts[i]), float(hit[1])
        return None

    def fill_price(self, reason: str, level: float, qty: float, symbol: str, timeframe: str, fill_ts: int) -> float:
        """The backtest's fill of a protective exit closing `qty`: a take-profit at its level (maker), a stop at its
        trigger price moved against the close by half spread + impact on the instance's bar holding the fill."""
        if reason != STOP or self.costs is None:
            return level
        from engine.backtest.costs import cost_params
        from engine.backtest.fill_price import impact_inputs, taker_price

        _ft, _fm, half_spread, impact_coef = cost_params(self.costs)
        sigma, vol_ref = (impact_inputs(self.store, self.source_id, symbol, timeframe, floor_ts(fill_ts, timeframe))
                          if impact_coef > 0.0 else (0.0, 0.0))
        return taker_price(level, -qty, qty, half_spread, impact_coef, sigma, vol_ref)

    def _fire(self, broker: Any, instance_id: str, symbol: str, qty: float, reason: str, bar_ts: int,
              price: float, fill_ts: int, weight: float, timeframe: str) -> dict | None:
        req = OrderRequest(instance_id=instance_id, symbol=symbol, side="sell" if qty > 0 else "buy", qty=abs(qty),
                           client_order_id=client_order_id(instance_id, symbol, bar_ts, reason), reduce_only=True,
                           reason=f"{reason} at bar {bar_ts}: {price!r} w={weight!r}")
        try:
            price = self.fill_price(reason, price, qty, symbol, timeframe, fill_ts)
            broker.fill_at(req, price, "taker" if reason == STOP else "maker", fill_ts)
        except OrderBlocked as exc:  # reduce-only passes every trading state; a cap never blocks a close
            log.warning("protective exit blocked: %s", exc)
            return None
        return {"symbol": symbol, "reason": reason, "bar_ts": bar_ts, "price": price, "qty": -qty}


def protection_spec_of(watch: StopWatch, stops_of: Callable[[str], Stops | None],
                       default: Callable[..., Any]) -> Callable[..., Any]:
    """The live Protector's `spec_of(instance_id, symbol)`: the strategy's levels where it declares a stop.

    The fractions armed at the trade's entry when there are any (vol-scaled stops differ per symbol and trade), else
    the spec's fixed fractions; `default` (the `[risk] protective_*` config) where the strategy declares no stop
    (a take-profit-only spec keeps the config stop: every live position rests with a stop)."""
    from engine.execution.protection import ProtectionSpec

    def spec_of(instance_id: str, symbol: str | None = None) -> Any:
        base = default(instance_id)
        spec = stops_of(instance_id)
        if spec is None:
            return base
        armed = watch.armed.get((instance_id, symbol)) if symbol is not None else None
        if armed is not None:
            sl, tp = armed.stop_frac, armed.take_frac
        elif spec.scale == "fixed":
            sl, tp = float(spec.stop_loss or 0.0), float(spec.take_profit or 0.0)
        else:
            return base  # vol-scaled and not armed (entered before this engine started): the config levels
        stop = sl if 0.0 < sl < 1.0 else base.stop_frac
        return ProtectionSpec(stop, tp if tp > 0.0 else base.take_frac)

    return spec_of
