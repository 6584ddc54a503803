"""Drift vs the backtest twin: pair every paper/live fill with what the backtester would have done on the same bars.

The backtester fills a bar-t signal at bar t+1 (`backtest.fill_model`, default next_open) at the configured taker fee
plus half-spread and square-root impact (its cost model, engine.backtest.costs). The engine decides right after bar t closes, so the twin bar is the bar the order was created in.
Per fill we store live vs twin price and fee, slippage (bps, signed so positive = worse than twin) and total drift
(slippage + fee difference, bps of notional). An alert fires when an instance's mean absolute drift exceeds
`lifecycle.max_drift_bps`.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import insert, select

from engine.clock import floor_ts
from engine.config import Settings
from engine.store.db import Store
from engine.store.ops import raise_alert
from engine.store.schema import candles, fills, orders, strategy_instances, twin_trades

STOP, TAKE = "stop_loss", "take_profit"  # orders.reason prefixes of protective exits (engine.trading.stops)


def twin_price(settings: Settings, bar: Any, side: str, qty: float = 0.0, sigma: float = 0.0) -> float:
    """The backtester's taker fill on a bar: fill-model price moved against us by half spread + sqrt impact.

    Same cost model as the backtest kernel (engine.backtest.costs): impact = impact_coef * sigma * sqrt(qty/volume).
    """
    from engine.backtest.costs import cost_params

    _fee_taker, _fee_maker, half_spread, impact_coef = cost_params(settings.backtest)
    model = settings.backtest.fill_model
    # the kernel's fill prices (engine.backtest.costs.market_arrays): open, close, or the typical price (o+h+l+c)/4
    base = bar.open if model == "next_open" else bar.close if model == "next_close" else (
        (bar.open + bar.high + bar.low + bar.close) / 4)
    impact = impact_coef * sigma * (qty / bar.volume) ** 0.5 if bar.volume > 0 and sigma > 0 and qty > 0 else 0.0
    move = half_spread + impact
    return base * (1 + move if side == "buy" else 1 - move)


def protective_twin(settings: Settings, reason: str, level: float, side: str, qty: float, sigma: float,
                    vol_ref: float) -> tuple[float, float]:
    """(twin price, twin fee) of a protective exit: the kernel fills a take-profit at its level as a maker and a stop
    at its trigger price (the level, or the gapped open) moved against us by half spread + impact, as a taker, with
    the kernel's sigma and previous-bar volume (engine.backtest.fill_price)."""
    from engine.backtest.costs import cost_params
    from engine.backtest.fill_price import taker_price

    _fee_taker, fee_maker, half_spread, impact_coef = cost_params(settings.backtest)
    if reason == TAKE:
        return level, qty * level * fee_maker
    px = taker_price(level, 1.0 if side == "buy" else -1.0, qty, half_spread, impact_coef, sigma, vol_ref)
    return px, qty * px * settings.backtest.fee_taker


_TRIGGER = re.compile(r" at bar \d+: ([0-9.eE+-]+) w=")


def bar_sigma(store: Store, exchange: str, symbol: str, timeframe: str, bar_ts: int) -> float:
    """EWM std of simple returns known before the bar (the backtest kernel's sigma), from stored candles."""
    from engine.backtest.fill_price import stored_sigma

    return stored_sigma(store, exchange, symbol, timeframe, bar_ts)


def pair_fills(store: Store, settings: Settings, exchange: str) -> int:
    """Create twin_trades rows for fills that have none yet and whose twin bar is stored; returns rows added."""
    with store.connect() as conn:
        rows = conn.execute(select(fills, orders.c.created_at, orders.c.reduce_only, orders.c.reason,
                                   strategy_instances.c.timeframe)
                            .join(orders, orders.c.client_order_id == fills.c.client_order_id)
                            .join(strategy_instances, strategy_instances.c.id == fills.c.instance_id)
                            .where(fills.c.client_order_id.notin_(select(twin_trades.c.client_order_id)))
                            .order_by(fills.c.id)).mappings().all()
    added = 0
    by_order: dict[str, list[Any]] = {}
    for r in rows:
        by_order.setdefault(r["client_order_id"], []).append(r)
    for coid, frs in by_order.items():
        first = frs[0]
        bar_ts = floor_ts(int(first["created_at"]), first["timeframe"])
        with store.connect() as conn:
            bar = conn.execute(select(candles).where(candles.c.exchange == exchange,
                                                     candles.c.symbol == first["symbol"],
                                                     candles.c.timeframe == first["timeframe"],
                                                     candles.c.ts == bar_ts)).first()
        if bar is None:
            continue  # the twin bar is not stored (yet); paired on a later run
        qty = sum(f["qty"] for f in frs)
        live_px = sum(f["qty"] * f["price"] for f in frs) / qty
        live_fee = sum(f["fee"] for f in frs)
        sigma = bar_sigma(store, exchange, first["symbol"], first["timeframe"], bar_ts)
        protective = str(first["reason"] or "").split(" ")[0]
        if protective in (STOP, TAKE):  # a strategy stop / take-profit: the kernel fills the same level (or gap open)
            from engine.backtest.fill_price import impact_inputs

            trigger = _TRIGGER.search(str(first["reason"]))
            sigma, vol_ref = impact_inputs(store, exchange, first["symbol"], first["timeframe"], bar_ts)
            twin_px, twin_fee = protective_twin(settings, protective, float(trigger.group(1)) if trigger else live_px,
                                                first["side"], qty, sigma, vol_ref)
        else:
            twin_px = twin_price(settings, bar, first["side"], qty, sigma)
            twin_fee = qty * twin_px * settings.backtest.fee_taker
        sign = 1 if first["side"] == "buy" else -1
        slippage = sign * (live_px - twin_px) / twin_px * 1e4
        drift = slippage + (live_fee - twin_fee) / (qty * twin_px) * 1e4
        with store.begin() as conn:
            conn.execute(insert(twin_trades).values(
                ts=int(frs[-1]["ts"]), instance_id=first["instance_id"], symbol=first["symbol"], client_order_id=coid,
                live_price=live_px, twin_price=twin_px, live_fee=live_fee, twin_fee=twin_fee, slippage_bps=slippage,
                drift_bps=drift, leg="exit" if first["reduce_only"] else "entry"))
        added += 1
    return added


def check_drift(store: Store, settings: Settings, window: int = 50) -> list[dict[str, Any]]:
    """Alert for each instance whose mean |drift| over its last `window` twin trades exceeds tolerance."""
    breaches = []
    with store.connect() as conn:
        ids = [r[0] for r in conn.execute(select(twin_trades.c.instance_id).distinct())]
        for inst in ids:
            vals = [abs(r[0]) for r in conn.execute(select(twin_trades.c.drift_bps).where(
                twin_trades.c.instance_id == inst).order_by(twin_trades.c.id.desc()).limit(window))]
            mean = sum(vals) / len(vals)
            if mean > settings.lifecycle.max_drift_bps:
                breaches.append({"instance_id": inst, "mean_abs_drift_bps": mean, "n": len(vals),
                                 "tolerance_bps": settings.lifecycle.max_drift_bps})
    for b in breaches:
        raise_alert(store, "warning", "drift.twin", f"{b['instance_id']}: drift vs backtest twin "
                    f"{b['mean_abs_drift_bps']:.1f} bps > {b['tolerance_bps']} bps", b)
    return breaches
