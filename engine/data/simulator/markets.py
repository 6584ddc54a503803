"""Instruments of the simulated exchange and their ccxt market structures (precision, limits, fees).

Each simulated underlying (BTC, ETH, SOL) trades as a spot pair and as a linear USDT perpetual. Precision follows
Binance's tick/step sizes in ccxt's TICK_SIZE mode, because the risk sizer rounds orders to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Underlying:
    """Statistical parameters of one simulated asset (shared by its spot pair and its perpetual)."""

    base: str
    start_price: float  # price level the slow mean reversion pulls towards
    sigma_min: float  # typical 1m log-return volatility
    loading: float  # loading on the common market factor (sets cross-asset correlation)
    crash_beta: float  # multiple of the market-wide event move this asset makes
    premium_mult: float  # multiple of the common perp premium
    volume_min: float  # typical spot 1m volume in base units
    depth_level: float  # typical book size per level in base units
    spread_bps: float  # calm-market spread in basis points
    netflow_scale: float  # on-chain exchange netflow scale in base units per hour


@dataclass(frozen=True)
class Instrument:
    """One tradable market: an underlying as spot or perpetual, with its exchange rules."""

    symbol: str
    underlying: Underlying
    index: int  # position in INSTRUMENTS; part of every random stream key
    kind: str  # spot | swap
    amount_step: float
    price_tick: float
    min_cost: float

    @property
    def is_perp(self) -> bool:
        """True for the linear perpetual swap."""
        return self.kind == "swap"

    @property
    def amount_decimals(self) -> int:
        """Decimal places of the amount step, for exact rounding."""
        return max(0, -int(math.floor(math.log10(self.amount_step) + 1e-9)))

    @property
    def price_decimals(self) -> int:
        """Decimal places of the price tick, for exact rounding."""
        return max(0, -int(math.floor(math.log10(self.price_tick) + 1e-9)))


UNDERLYINGS: tuple[Underlying, ...] = (
    Underlying("BTC", 60000.0, 7.5e-4, 0.93, 1.0, 1.0, 25.0, 2.0, 0.3, 400.0),
    Underlying("ETH", 3000.0, 1.0e-3, 0.90, 1.2, 1.15, 400.0, 30.0, 0.6, 6000.0),
    Underlying("SOL", 150.0, 1.4e-3, 0.80, 1.5, 1.4, 6000.0, 400.0, 1.2, 80000.0),
)


def _instruments(btc_start: float) -> tuple[Instrument, ...]:
    """Build the six instruments, with BTC's start price taken from settings."""
    btc, eth, sol = UNDERLYINGS
    btc = Underlying(**{**btc.__dict__, "start_price": float(btc_start)})
    rules = [  # (underlying, kind, amount step, price tick, min cost)
        (btc, "spot", 1e-5, 0.01, 5.0), (eth, "spot", 1e-4, 0.01, 5.0), (sol, "spot", 1e-3, 0.01, 5.0),
        (btc, "swap", 1e-3, 0.1, 100.0), (eth, "swap", 1e-3, 0.01, 20.0), (sol, "swap", 1.0, 0.01, 5.0),
    ]
    out = []
    for i, (u, kind, step, tick, min_cost) in enumerate(rules):
        symbol = f"{u.base}/USDT" + (":USDT" if kind == "swap" else "")
        out.append(Instrument(symbol, u, i, kind, step, tick, min_cost))
    return tuple(out)


DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT",
                                    "SOL/USDT:USDT")


def build_instruments(btc_start: float = 60000.0) -> dict[str, Instrument]:
    """All simulated instruments keyed by ccxt unified symbol."""
    if not (btc_start > 0 and math.isfinite(btc_start)):
        raise ValueError(f"start_price_btc: must be a positive number, got {btc_start!r}")
    return {inst.symbol: inst for inst in _instruments(btc_start)}


def market_dict(inst: Instrument) -> dict[str, Any]:
    """The ccxt unified market structure for an instrument (TICK_SIZE precision mode)."""
    u = inst.underlying
    perp = inst.is_perp
    market_id = f"{u.base}USDT" + ("-PERP" if perp else "")
    return {
        "id": market_id, "symbol": inst.symbol, "base": u.base, "quote": "USDT", "settle": "USDT" if perp else None,
        "baseId": u.base, "quoteId": "USDT", "settleId": "USDT" if perp else None,
        "type": inst.kind, "spot": not perp, "margin": False, "swap": perp, "future": False, "option": False,
        "index": None, "active": True, "contract": perp, "linear": True if perp else None,
        "inverse": False if perp else None, "subType": "linear" if perp else None,
        "contractSize": 1.0 if perp else None, "expiry": None, "expiryDatetime": None, "strike": None,
        "optionType": None, "taker": 0.0005 if perp else 0.001, "maker": 0.0002 if perp else 0.001,
        "percentage": True, "tierBased": False, "feeSide": "get",
        "precision": {"amount": inst.amount_step, "price": inst.price_tick, "cost": None, "base": None,
                      "quote": None},
        "limits": {"amount": {"min": inst.amount_step, "max": None}, "price": {"min": inst.price_tick, "max": None},
                   "cost": {"min": inst.min_cost, "max": None},
                   "leverage": {"min": 1.0, "max": 20.0 if perp else None}, "market": {"min": None, "max": None}},
        "marginModes": {"cross": perp, "isolated": perp}, "created": None,
        "info": {"symbol": market_id, "simulated": True},
    }
