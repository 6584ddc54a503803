"""Bet sizing from the meta-model's calibrated probability, with caps and exchange rounding, recorded for the console.

Methods (risk.sizing):
- kelly: full Kelly f* = p - (1-p)/b with b the barriers' payoff ratio (pt_mult / sl_mult), times
  risk.kelly_fraction (fractional Kelly), floored at zero.
- probability: López de Prado's size m = 2 Phi(z) - 1 with z = (p - 1/2) / sqrt(p (1-p)), times
  risk.max_trade_fraction (AFML ch. 10).
- fixed: risk.max_trade_fraction whenever the trade passes risk.min_probability.
No model (meta_prob None) means fixed sizing: the primary signal alone. The strategy's weight magnitude (in [0, 1])
scales the fraction (a 0.5 weight takes half of it). Then toxicity shrinks the size (linearly to
zero as the VPIN CDF goes from risk.vpin_cdf_scale_from to 1), the caps clip it, a trade may take at most
risk.max_depth_fraction of the same-side book depth, and the quantity is rounded to the exchange's lot and minimums.
Every decision keeps its inputs so "why is this size what it is" has an answer in `sizing_decisions`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import insert

from engine.clock import now_ms
from engine.config import RiskConfig
from engine.risk.limits import Exposure, MarketRules, apply_caps, round_to_market
from engine.store.db import Store
from engine.store.schema import sizing_decisions

METHODS = ("kelly", "probability", "fixed")


@dataclass(frozen=True)
class SizingDecision:
    """One sizing decision: inputs, the intermediate fractions, the binding cap and the final base quantity."""

    symbol: str
    side: int
    price: float
    method: str
    meta_prob: float | None
    payoff_ratio: float | None
    kelly_fraction: float | None  # full-Kelly f* (before the fractional multiplier); None unless p and b known
    raw_size: float  # fraction of instance capital before caps
    cap_applied: str  # which limit bound: per_trade, per_strategy, per_symbol, portfolio, depth, min_notional, ...
    final_size: float  # unsigned base quantity after caps and lot rounding
    vpin_cdf: float | None = None
    spread_bps: float | None = None
    depth: float | None = None
    ts: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def signed_qty(self) -> float:
        """Final quantity with the primary side's sign (+ buy, - sell)."""
        return self.final_size * self.side

    @property
    def notional(self) -> float:
        """Final quantity times price, in quote currency."""
        return self.final_size * self.price


def kelly_fraction(p: float, b: float) -> float:
    """Full-Kelly fraction f* = p - (1-p)/b for win probability p and payoff ratio b (may be negative)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"meta_prob: must be a probability in [0, 1], got {p}")
    if not b > 0:
        raise ValueError(f"payoff_ratio: must be > 0, got {b}")
    return p - (1.0 - p) / b


def probability_size(p: float) -> float:
    """López de Prado's bet size 2*Phi(z) - 1, z = (p - 0.5)/sqrt(p(1-p)), for a binary meta-label; in [-1, 1]."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"meta_prob: must be a probability in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 2.0 * p - 1.0
    from scipy.special import ndtr  # scipy.special costs ~0.1 s to import: not on the engine's start path

    z = (p - 0.5) / math.sqrt(p * (1.0 - p))
    return float(2.0 * ndtr(z) - 1.0)


def _toxicity_scale(vpin_cdf: float | None, risk: RiskConfig) -> float:
    if vpin_cdf is None or not math.isfinite(vpin_cdf) or vpin_cdf <= risk.vpin_cdf_scale_from:
        return 1.0
    span = 1.0 - risk.vpin_cdf_scale_from
    return max(0.0, (1.0 - vpin_cdf) / span) if span > 0 else 0.0


def size_position(symbol: str, side: int, price: float, exposure: Exposure, risk: RiskConfig,
                  meta_prob: float | None = None, payoff_ratio: float | None = None,
                  rules: MarketRules | None = None, vpin_cdf: float | None = None,
                  spread_bps: float | None = None, depth: float | None = None,
                  method: str | None = None, ts: int | None = None, weight: float = 1.0) -> SizingDecision:
    """Size one trade for a primary side: probability -> fraction x |weight| -> toxicity -> caps -> depth -> lots.

    `weight` is the strategy's target weight magnitude in [0, 1]: 0.5 takes half the Kelly / fixed size."""
    if side not in (-1, 0, 1):
        raise ValueError(f"side: must be -1, 0 or +1, got {side!r}")
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"price: must be a positive number, got {price!r}")
    if not (isinstance(weight, (int, float)) and 0.0 <= weight <= 1.0):
        raise ValueError(f"weight: must be a magnitude in [0, 1], got {weight!r}")
    method = method or risk.sizing
    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    rules = rules or MarketRules()
    if meta_prob is None:
        method = "fixed"
    f_star = kelly_fraction(meta_prob, payoff_ratio) if meta_prob is not None and payoff_ratio is not None else None
    cap = ""
    if side == 0:
        raw, cap = 0.0, "flat"
    elif meta_prob is not None and meta_prob < risk.min_probability:
        raw, cap = 0.0, "min_probability"
    elif method == "kelly":
        if f_star is None:
            raise ValueError("payoff_ratio: required for kelly sizing")
        raw = risk.kelly_fraction * max(f_star, 0.0)
        cap = "" if f_star > 0 else "negative_edge"
    elif method == "probability":
        raw = max(probability_size(float(meta_prob)), 0.0) * risk.max_trade_fraction
    else:
        raw = risk.max_trade_fraction
    raw *= float(weight)
    scale = _toxicity_scale(vpin_cdf, risk)
    notional = raw * scale * exposure.instance_capital
    if scale < 1.0 and raw > 0:
        cap = "vpin"
    if notional > 0:
        notional, bound = apply_caps(notional, exposure, risk)
        cap = bound or cap
        if depth is not None and math.isfinite(depth) and notional > risk.max_depth_fraction * depth:
            notional, cap = max(0.0, risk.max_depth_fraction * depth), "depth"
    qty, why = round_to_market(notional / price, price, rules)
    cap = why or cap
    inputs = {"exposure": asdict(exposure), "rules": asdict(rules), "risk_method": method,
              "kelly_multiplier": risk.kelly_fraction, "toxicity_scale": scale, "capped_notional": notional,
              "min_probability": risk.min_probability, "weight": float(weight)}
    return SizingDecision(symbol=symbol, side=side, price=float(price), method=method, meta_prob=meta_prob,
                          payoff_ratio=payoff_ratio, kelly_fraction=f_star, raw_size=raw, cap_applied=cap,
                          final_size=qty, vpin_cdf=vpin_cdf, spread_bps=spread_bps, depth=depth,
                          ts=now_ms() if ts is None else int(ts), inputs=inputs)


def record_decision(store: Store, instance_id: str, decision: SizingDecision) -> int:
    """Write a sizing decision with its inputs to `sizing_decisions`; returns the row id."""
    if not instance_id:
        raise ValueError("instance_id: required")
    inputs = dict(decision.inputs, method=decision.method, price=decision.price)
    row = {"ts": decision.ts, "instance_id": instance_id, "symbol": decision.symbol, "side": decision.side,
           "meta_prob": decision.meta_prob, "payoff_ratio": decision.payoff_ratio,
           "kelly_fraction": decision.kelly_fraction, "raw_size": decision.raw_size,
           "cap_applied": decision.cap_applied, "final_size": decision.final_size, "vpin_cdf": decision.vpin_cdf,
           "spread_bps": decision.spread_bps, "depth": decision.depth,
           "inputs": json.dumps(inputs, default=str, sort_keys=True)}
    with store.begin() as conn:
        return int(conn.execute(insert(sizing_decisions).values(**row)).inserted_primary_key[0])
