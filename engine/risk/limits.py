"""Exposure caps (per trade, strategy, symbol, portfolio) and exchange rounding (lot size, minimum notional).

Caps are expressed as room left: a new trade may add at most the smallest headroom among the caps, and the name of
the cap that bound is reported so the console can say why a size is what it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from engine.config import RiskConfig


@dataclass(frozen=True)
class Exposure:
    """Gross notional already held, in quote currency, at each level the caps apply to."""

    instance_capital: float
    portfolio_equity: float
    strategy_gross: float = 0.0
    symbol_gross: float = 0.0
    portfolio_gross: float = 0.0

    def __post_init__(self) -> None:
        """Reject exposures that make caps meaningless."""
        if not self.instance_capital > 0:
            raise ValueError(f"instance_capital: must be > 0, got {self.instance_capital}")
        if not self.portfolio_equity > 0:
            raise ValueError(f"portfolio_equity: must be > 0, got {self.portfolio_equity}")
        for name in ("strategy_gross", "symbol_gross", "portfolio_gross"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: gross exposure cannot be negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class MarketRules:
    """The exchange's order constraints for one symbol (ccxt market['precision'/'limits'])."""

    lot_size: float = 0.0  # quantity step; 0 = no rounding
    min_qty: float = 0.0
    min_notional: float = 0.0

    def __post_init__(self) -> None:
        """Reject negative steps and limits."""
        for name in ("lot_size", "min_qty", "min_notional"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_market(cls, market: Mapping[str, Any]) -> "MarketRules":
        """The rules in a ccxt market structure: amount precision (a tick size, or a count of decimal places) and
        the amount / cost minimums."""
        prec = (market.get("precision") or {}).get("amount")
        step = 0.0 if not prec or prec <= 0 else (float(prec) if prec < 1 else 10.0 ** -int(prec))
        limits = market.get("limits") or {}
        return cls(lot_size=step, min_qty=float((limits.get("amount") or {}).get("min") or 0.0),
                   min_notional=float((limits.get("cost") or {}).get("min") or 0.0))


def round_to_lot(qty: float, lot_size: float) -> float:
    """The one lot rounding: a (signed) quantity rounded toward zero to whole lots; lot_size 0 leaves it as is."""
    if lot_size <= 0:
        return qty
    steps = math.floor(abs(qty) / lot_size + 1e-9)  # 1e-9: 0.3 / 0.1 is 2.9999999999999996 in floats
    return math.copysign(round(steps * lot_size, 12), qty) if steps else 0.0


def headrooms(exposure: Exposure, risk: RiskConfig) -> dict[str, float]:
    """Notional each cap still allows for one new trade (never negative)."""
    return {
        "per_trade": risk.max_trade_fraction * exposure.instance_capital,
        "per_strategy": max(0.0, risk.max_strategy_fraction * exposure.instance_capital - exposure.strategy_gross),
        "per_symbol": max(0.0, risk.max_symbol_fraction * exposure.portfolio_equity - exposure.symbol_gross),
        "portfolio": max(0.0, risk.max_portfolio_leverage * exposure.portfolio_equity - exposure.portfolio_gross),
    }


def apply_caps(notional: float, exposure: Exposure, risk: RiskConfig) -> tuple[float, str]:
    """Clip a desired notional to every cap; returns (allowed notional, name of the binding cap or '')."""
    if notional < 0:
        raise ValueError(f"notional: must be >= 0 (sizes are unsigned), got {notional}")
    rooms = headrooms(exposure, risk)
    name, room = min(rooms.items(), key=lambda kv: kv[1])
    if notional > room:
        return room, name
    return notional, ""


def round_to_market(qty: float, price: float, rules: MarketRules) -> tuple[float, str]:
    """Round a base quantity down to the lot step; zero it when under min qty / min notional (and say which)."""
    if price <= 0 or not math.isfinite(price):
        raise ValueError(f"price: must be a positive number, got {price}")
    if qty < 0:
        raise ValueError(f"qty: must be >= 0, got {qty}")
    qty = round_to_lot(qty, rules.lot_size)
    if qty > 0 and qty < rules.min_qty:
        return 0.0, "min_qty"
    if qty > 0 and qty * price < rules.min_notional:
        return 0.0, "min_notional"
    return qty, ""
