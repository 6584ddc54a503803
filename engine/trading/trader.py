"""One strategy tick: panel -> weight at the last closed bar -> size (risk.sizing + ML champion) x |weight| -> order.

The strategy's weight in [-1, 1] scales the size the risk sizer gives a full signal (0.5 = half of it). Its
protective stops (engine.trading.stops) are checked on the bars closed since the last tick before each decision.

Each instance trades its own capital (live-small a fraction of it). The client order id is derived from
(instance, symbol, bar), so re-running a tick for the same bar after a crash returns the existing order instead of
sending a second one. The trading-state gate runs in the broker before every order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from engine.clock import floor_ts, timeframe_ms
from engine.config import Settings
from engine.execution.broker import Broker
from engine.execution.orders import OrderBlocked, OrderRequest, client_order_id, load_positions
from engine.trading.lifecycle import Instance
from engine.risk.limits import MarketRules, round_to_lot
from engine.trading.live_sizing import LiveSizer
from engine.trading.stops import StopWatch
from engine.strategy.stops import Stops
from engine.store.db import Store

log = logging.getLogger("quantdesk.trader")


@dataclass(frozen=True)
class TickResult:
    """What one tick decided and sent."""

    instance_id: str
    bar_ts: int | None
    targets: dict[str, float]
    orders: list[str]
    note: str = ""


def load_strategy_for(inst: Instance, store: Store) -> Any:
    """Instantiate the instance's strategy through the registry, wrapped so its exceptions become alerts."""
    from engine.strategy.registry import load_strategy
    from engine.strategy.wrapper import SafeStrategy

    return SafeStrategy(load_strategy(inst.strategy, inst.params or None), store=store, instance_id=inst.id)


class Trader:
    """Runs strategy ticks for instances against one broker and source."""

    def __init__(self, store: Store, settings: Settings, broker: Broker, source: Any,
                 vpin_cdf: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.broker = broker
        self.source = source
        self._strategies: dict[str, Any] = {}
        self.sizer = LiveSizer(store, settings, vpin_cdf=vpin_cdf)
        self.last_panel: dict[str, Any] = {}
        self._last_bar: dict[str, int] = {}
        self.stop_watch = StopWatch(store, source.id, settings.backtest)
        self._weights: dict[str, dict[str, float]] = {}  # instance -> the weights of its last tick
        self._latched: set[str] = set()  # exchange protective fills already turned into a stopped-out state
        self._told_no_short: set[tuple[str, str]] = set()  # (instance, symbol) whose held-flat short was alerted

    def strategy(self, inst: Instance) -> Any:
        """The cached strategy object of an instance."""
        if inst.id not in self._strategies:
            self._strategies[inst.id] = load_strategy_for(inst, self.store)
        return self._strategies[inst.id]

    def stops_of(self, inst: Instance) -> Stops | None:
        """The instance's strategy stop spec (None when it declares none, or its stops() is broken: alerted)."""
        fn = getattr(self.strategy(inst), "stops", None)
        spec = fn() if callable(fn) else None
        return spec if isinstance(spec, Stops) and spec.active else None

    def check_stops(self, inst: Instance) -> list[dict]:
        """Paper only: close positions whose strategy stop / take-profit a closed (1m) bar reached, at the kernel's
        price (the level, or the open on a gap); live protection rests on the exchange (engine.execution.protection)."""
        broker = self.broker
        if hasattr(broker, "broker_for"):  # the engine's StageRouter: the instance's own venue
            try:
                broker = broker.broker_for(inst.id)
            except OrderBlocked:
                return []
        if not hasattr(broker, "fill_at"):
            return []
        stops = self.stops_of(inst)
        if stops is None and not any(key[0] == inst.id for key in self.stop_watch.armed):
            return []  # nothing to protect: no query on every tick-job run
        return self.stop_watch.check(inst.id, inst.timeframe, broker, self.source.milliseconds(),
                                     stops, self.last_panel, self._weights.get(inst.id))

    def _latch_exchange_exit(self, instance_id: str, symbol: str, weight: float) -> None:
        """Live: a protective stop / take-profit that filled on the exchange (also while the engine was down) keeps
        the symbol flat until the strategy's weight changes, as paper and the backtest do; the tick never re-enters
        the position the stop just closed on the same signal."""
        from sqlalchemy import select

        from engine.store.schema import orders

        with self.store.connect() as conn:
            last = conn.execute(select(orders.c.client_order_id, orders.c.type, orders.c.reason).where(
                orders.c.instance_id == instance_id, orders.c.symbol == symbol, orders.c.filled_qty > 0)
                .order_by(orders.c.id.desc()).limit(1)).first()
        if last is None or last[0] in self._latched:
            return
        if last[1] in ("stop", "take") or str(last[2] or "").startswith("stop crossed"):
            self._latched.add(last[0])
            self.stop_watch.exited[(instance_id, symbol)] = weight
            log.info("%s %s: closed by its exchange-side %s; flat until the weight changes", instance_id, symbol,
                     last[1])

    def _tell_no_short(self, instance_id: str, symbol: str, message: str) -> None:
        """One alert per instance and symbol per process: its short signals are held flat on this venue."""
        from engine.store.ops import raise_alert

        if (instance_id, symbol) not in self._told_no_short:
            self._told_no_short.add((instance_id, symbol))
            raise_alert(self.store, "info", "trading.no_short", f"{instance_id}: {message}",
                        {"instance_id": instance_id, "symbol": symbol})

    def last_closed_bar(self, inst: Instance) -> int:
        """Open time of the most recent bar that has closed in source time."""
        return floor_ts(self.source.milliseconds(), inst.timeframe) - timeframe_ms(inst.timeframe)

    def due(self, inst: Instance) -> bool:
        """True when a bar closed since this instance's last tick."""
        return self._last_bar.get(inst.id) != self.last_closed_bar(inst)

    def bar_stored(self, inst: Instance, bar_ts: int) -> bool:
        """True when bar `bar_ts` of every symbol of the instance is in state.db."""
        from sqlalchemy import func, select

        from engine.store.schema import candles

        with self.store.connect() as conn:
            n = conn.execute(select(func.count()).select_from(candles).where(
                candles.c.exchange == self.source.id, candles.c.symbol.in_(list(inst.symbols)),
                candles.c.timeframe == inst.timeframe, candles.c.ts == bar_ts)).scalar()
        return int(n or 0) >= len(inst.symbols)

    def signals_at(self, inst: Instance, bar_ts: int) -> dict[str, float]:
        """Signed target weights per symbol at bar `bar_ts` (0 when the strategy says flat or has no data).

        The panel used is kept in `self.last_panel` for the meta-model's features."""
        from engine.features.panel import load_panel

        if not self.bar_stored(inst, bar_ts):
            return {}  # cheap check first: the strategy runs only once the bar is in state.db
        strat = self.strategy(inst)
        step = timeframe_ms(inst.timeframe)
        warm = int(getattr(strat, "warmup_bars", 0) or 0)
        since = bar_ts - max(300, warm + 100) * step
        panel = load_panel(self.store, self.source.id, list(inst.symbols), inst.timeframe, since, bar_ts + 1)
        panel = {s: f for s, f in panel.items() if len(f)}
        self.last_panel = panel
        if not panel:
            return {}
        frame = strat.weights(panel) if hasattr(strat, "weights") else strat.signals(panel)
        if frame is None or len(frame) == 0:
            return {}
        import pandas as pd

        when = pd.Timestamp(bar_ts, unit="ms", tz="UTC")
        if frame.index[-1] < when:
            return {}  # the latest bar is not stored yet; tick again when it is
        row = frame.loc[:when].iloc[-1]
        return {s: float(row.get(s, 0.0) or 0.0) for s in inst.symbols if s in panel}

    def tick(self, inst: Instance, capital: float) -> TickResult:
        """Move the instance's positions toward the strategy's targets at the last closed bar."""
        bar_ts = self.last_closed_bar(inst)
        self.check_stops(inst)  # exits on bars that closed since the last check come before the new decision
        weights = self.signals_at(inst, bar_ts)
        if not weights:
            return TickResult(inst.id, bar_ts, {}, [], "no data for the last closed bar yet")
        self._weights[inst.id] = dict(weights)
        for symbol, w in weights.items():
            self._latch_exchange_exit(inst.id, symbol, w)
        held = {p["symbol"]: p["qty"] for p in load_positions(self.store, inst.id)}
        probs, model = self.sizer.meta_probs(inst, self.strategy(inst), self.last_panel, self.source,
                                             self.source.milliseconds())
        marks = {sym: self.broker.mark_price(sym) for sym in set(weights) | {p["symbol"] for p in
                                                                            load_positions(self.store)}}
        targets, sent = {}, []
        stops = self.stops_of(inst)
        for symbol, w in weights.items():
            if self.stop_watch.blocks(inst.id, symbol, w):
                w = 0.0  # stopped out: flat until the strategy's weight changes (as the backtest kernel)
            no_short = None
            if w < 0 and not self.broker.can_short(inst.id, symbol):  # e.g. spot on the exchange: nothing to sell
                no_short = (f"{symbol}: the strategy's short ({w:.4g}) is held flat; {inst.id}'s venue cannot hold a "
                            "short here (spot: no borrowing; trade the perpetual to go short)")
                self._tell_no_short(inst.id, symbol, no_short)
            mark = marks[symbol]
            market = self.source.market(symbol)
            try:
                book = self.source.fetch_order_book(symbol, 50)
            except Exception:  # noqa: BLE001 - sizing without depth/spread is still sizing
                book = None
            target = self.sizer.size(inst, symbol, max(-1.0, min(1.0, w)), mark, capital, bar_ts, market, book,
                                     probs, model, marks, no_short=no_short)
            targets[symbol] = target
            delta = round_to_lot(target - held.get(symbol, 0.0), MarketRules.from_market(market).lot_size)
            flip_or_exit = target == 0 or target * held.get(symbol, 0.0) <= 0
            ex = self.settings.execution
            rules = MarketRules.from_market(market)  # the exchange refuses less (Binance -1013 NOTIONAL, LOT_SIZE)
            if abs(delta) < rules.min_qty or abs(delta) * mark < max(ex.min_order_notional, rules.min_notional):
                continue  # a top-up the venue would reject on every tick
            if abs(delta) * mark < ex.min_order_notional or (not flip_or_exit and abs(delta)
                                                              < ex.rebalance_band * abs(target)):
                continue  # drift of a held position inside the band is not worth the fees
            reduce_only = abs(target) < abs(held.get(symbol, 0.0)) and target * held.get(symbol, 0.0) >= 0
            new_trade = stops is not None and target != 0 and target * held.get(symbol, 0.0) <= 0
            armed = None
            if new_trade:  # armed before the order: a live broker places its protective stop right after the fill
                armed = self.stop_watch.arm(inst.id, symbol, target, stops, self.last_panel, bar_ts,
                                            self.source.milliseconds(), inst.timeframe, weight=w)
            req = OrderRequest(instance_id=inst.id, symbol=symbol, side="buy" if delta > 0 else "sell",
                               qty=abs(delta), client_order_id=client_order_id(inst.id, symbol, bar_ts),
                               reduce_only=reduce_only, reason=f"bar {bar_ts} target {target:.8g}"
                               + (armed.tag() if armed is not None else ""))  # in state.db: survives a restart
            try:
                order = self.broker.submit(req)
                sent.append(order["client_order_id"])
            except OrderBlocked as exc:
                log.info("order blocked: %s", exc)
                if new_trade:
                    self.stop_watch.armed.pop((inst.id, symbol), None)
        self._last_bar[inst.id] = bar_ts
        return TickResult(inst.id, bar_ts, targets, sent)
