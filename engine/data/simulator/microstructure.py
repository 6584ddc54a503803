"""Trade tapes and order books consistent with the simulated bars.

Trades for one (instrument, day) come from the stream `(seed, 4, instrument, day)`: per minute 5-60 trades (scaled
with volume), the first at the open and the last at the close, one at the high and one at the low, heavy-tailed
sizes that sum exactly to the bar volume (in amount steps), and taker sides chosen so that the buy volume matches
the minute's taker-buy share. Books at time t come from `(seed, 3, instrument, second)`, centred on the last trade
price, with spread widening and depth thinning as stress rises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.simulator.intraday import DayCommon, InstDay
from engine.data.simulator.markets import Instrument

BOOK_LEVELS = 25


@dataclass(frozen=True)
class Tape:
    """A day's trades for one instrument, in time order."""

    ts: np.ndarray  # int64 ms
    price: np.ndarray
    amount: np.ndarray
    buy: np.ndarray  # bool, taker side is buy
    ident: np.ndarray  # int64, unique per instrument: minute index since epoch * 100 + position


def trades_for_day(common: DayCommon, bars: InstDay, inst: Instrument, seed: int) -> Tape:
    """Build the trade tape of `inst` for the day of `common` from its bars."""
    rng = np.random.default_rng([seed, 4, inst.index, common.day])
    units = bars.units
    ratio = bars.volume / np.median(bars.volume)
    n = np.clip(np.round(6 + 22 * ratio ** 0.7), 5, 60).astype(np.int64)
    n = np.minimum(n, units)
    total = int(n.sum())
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    minute = np.repeat(np.arange(n.size), n)
    pos = np.arange(total) - starts[minute]
    last = pos == n[minute] - 1
    # Sizes: 1 step each plus a heavy-tailed share of the rest; the rounding remainder goes to one random trade.
    w = rng.lognormal(0.0, 1.9, total)  # calibrated: real BTC perp trade size mean/median ~7, p99/median ~70
    wsum = np.add.reduceat(w, starts)
    extra = np.floor(w / wsum[minute] * (units - n)[minute]).astype(np.int64)
    amt_units = 1 + extra
    rem = units - np.add.reduceat(amt_units, starts)
    lucky = starts + (rng.random(n.size) * n).astype(np.int64)
    amt_units[lucky] += rem
    # Prices: open first, close last, the high and low at two distinct interior positions, the rest in between.
    o, h, lo_, c = bars.open[minute], bars.high[minute], bars.low[minute], bars.close[minute]
    frac = pos / np.maximum(n[minute] - 1, 1)
    mid = o + (c - o) * frac + (h - lo_) * 0.35 * rng.standard_normal(total)
    price = np.clip(np.round(mid, inst.price_decimals), lo_, h)
    interior = n - 2
    p_hi = 1 + (rng.random(n.size) * interior).astype(np.int64)
    p_lo = 1 + (rng.random(n.size) * (interior - 1)).astype(np.int64)
    p_lo = np.where(p_lo >= p_hi, p_lo + 1, p_lo)
    price[starts + p_hi] = bars.high
    price[starts + p_lo] = bars.low
    price[starts] = bars.open
    price[last] = c[last]
    # Sides: walk runs of consecutive trades (a parent order split into fills, mean run 4) in random order; buys
    # until the minute's buy share of volume is used up. Runs give the tape its real side autocorrelation.
    brk = rng.random(total) < 0.25
    brk[starts] = True
    run = np.cumsum(brk) - 1
    order = np.argsort(minute + rng.random(run[-1] + 1)[run] * 0.999 + pos * 1e-6, kind="stable")
    cum = np.cumsum(amt_units[order])
    before = cum - amt_units[order] - np.repeat(np.concatenate([[0], np.cumsum(units)[:-1]]), n)
    buy = np.empty(total, bool)
    buy[order] = before + amt_units[order] / 2 < (bars.buy_frac * units)[minute[order]]  # midpoint: unbiased
    # Times: the first trade at the minute's first millisecond, the rest sorted uniformly within the minute.
    offs = rng.integers(1, 60_000, total)
    offs[starts] = 0
    ts = np.sort(common.ts[minute] + offs)  # offsets stay inside their minute, so a global sort sorts per minute
    ident = ((common.ts[minute] - 1_577_836_800_000) // 60_000) * 100 + pos
    amount = np.round(amt_units * inst.amount_step, inst.amount_decimals)
    return Tape(ts, price, amount, buy, ident)


def order_book(inst: Instrument, seed: int, t_ms: int, last_price: float, last_buy: bool, stress: float,
               limit: int = BOOK_LEVELS) -> tuple[list[list[float]], list[list[float]]]:
    """Bids and asks (best first) at time t: around the last trade, wider and thinner under stress."""
    if limit < 1:
        raise ValueError(f"limit: must be a positive number of levels, got {limit!r}")
    rng = np.random.default_rng([seed, 3, inst.index, int(t_ms) // 1000])
    u = inst.underlying
    tick = inst.price_tick
    levels = max(limit, BOOK_LEVELS)
    spread_bps = u.spread_bps * (0.8 if inst.is_perp else 1.0) * (1 + 20 * stress) * rng.lognormal(0, 0.35)
    spread = max(tick, round(last_price * spread_bps * 1e-4 / tick) * tick)
    if last_buy:  # a buy lifted the ask, so the ask sits at the last price
        ask1 = last_price
        bid1 = ask1 - spread
    else:
        bid1 = last_price
        ask1 = bid1 + spread
    gap_ticks = max(1, int(round(last_price * 0.5e-4 * (1 + 2 * stress) / tick)))
    steps = np.cumsum(1 + rng.poisson(0.3, (2, levels)), axis=1) - 1  # occasional empty price levels
    depth = u.depth_level * (0.5 if inst.is_perp else 1.0) * 2.0 / (1 + 4 * stress)
    size = depth * (1 + 0.15 * np.arange(levels))[None, :] * rng.exponential(1.0, (2, levels))
    size_steps = np.maximum(1, np.round(size / inst.amount_step))
    amounts = np.round(size_steps * inst.amount_step, inst.amount_decimals)
    dec = inst.price_decimals
    bids = [[float(round(bid1 - k * gap_ticks * tick, dec)), float(a)] for k, a in zip(steps[0], amounts[0])]
    asks = [[float(round(ask1 + k * gap_ticks * tick, dec)), float(a)] for k, a in zip(steps[1], amounts[1])]
    bids = [lvl for lvl in bids if lvl[0] > 0]
    return bids[:limit], asks[:limit]
