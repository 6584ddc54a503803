"""One simulated UTC day of 1m bars for every instrument, bridged to the coarse hourly anchors.

Drawn from the random stream `(seed, 2, day)` only, so a day is identical whenever it is generated. Minute returns
are Student-t noise scaled by (hourly vol x intraday seasonality x a fast minute vol factor x stress), with a common
market factor, plus the episodes' drift. Each hour's noise is bridged (variance-weighted) to the coarse hour's noise
so that the minute path ends exactly on the next hourly anchor; the perp is the spot times exp(premium), with the
premium interpolated between hourly anchors plus a bridged wiggle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.simulator.events import MIN_MS, event_fields
from engine.data.simulator.markets import Instrument
from engine.data.simulator.world import DAY_MS, EPOCH_MS, STRESS_VOL, World, _ar1, season, std_t

MINUTES = 1440
FAST_PHI, FAST_STD = 0.97, 0.4  # minute-level log-vol factor (short-memory clustering)
PERP_VOLUME_MULT = 2.5


@dataclass
class DayChunk:
    """A day's bars (rows = instruments, columns = minutes) and the market-wide truth per minute."""

    day: int
    ts: np.ndarray  # int64 minute open times
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # base units, a multiple of the amount step
    units: np.ndarray  # int64 volume in amount steps (trades split this exactly)
    buy_frac: np.ndarray  # taker-buy share of the minute's volume
    sigma: np.ndarray  # minute log-return volatility
    regime: np.ndarray  # int8 index into REGIMES (3 = crash)
    informed: np.ndarray
    side: np.ndarray
    stress: np.ndarray


def _round(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round to an exchange grid given by decimal places."""
    return np.round(values, decimals)


def generate_day(world: World, day: int, instruments: tuple[Instrument, ...]) -> DayChunk:
    """Generate day `day` (days since EPOCH) for all instruments, ordered by Instrument.index."""
    if day < 0:
        raise ValueError(f"day: {day} is before the simulator epoch")
    h0 = day * 24
    world.ensure_hours(h0 + 26)
    rng = np.random.default_rng([world.seed, 2, day])
    ts = EPOCH_MS + day * DAY_MS + np.arange(MINUTES, dtype=np.int64) * MIN_MS
    ef = event_fields(world.events_between(int(ts[0]), int(ts[-1]) + MIN_MS), ts)
    hours = h0 + np.arange(24)
    hidx = np.arange(MINUTES) // 60
    fast = _ar1(rng.standard_normal(MINUTES) * FAST_STD * math.sqrt(1 - FAST_PHI ** 2), FAST_PHI,
                np.array([rng.standard_normal() * FAST_STD / FAST_PHI]))
    g = np.exp(fast - FAST_STD ** 2)
    base = season(ts) * (1 + STRESS_VOL * ef.stress)
    k = len(world.und)
    z = std_t(rng, 5.0, MINUTES)
    u_hi, u_lo = rng.random((2, MINUTES))
    regime = np.where(ef.crash, 3, world.regime[hours][hidx]).astype(np.int8)
    n_inst = len(instruments)
    out = {name: np.zeros((n_inst, MINUTES)) for name in ("open", "high", "low", "close", "volume", "buy_frac",
                                                          "sigma")}
    units = np.zeros((n_inst, MINUTES), np.int64)
    spot_log = np.zeros((k, MINUTES + 1))
    spot_sig, spot_e = np.zeros((k, MINUTES)), np.zeros((k, MINUTES))
    for s in range(k):
        sig_plain = world.sigma[s] * np.exp(world.logvol[hours])[hidx] * base
        sig = sig_plain * g
        e = sig * (world.loading[s] * z + math.sqrt(1 - world.loading[s] ** 2) * std_t(rng, 5.0, MINUTES))
        e2 = e.reshape(24, 60)
        w = (sig ** 2).reshape(24, 60)
        w /= w.sum(axis=1, keepdims=True)
        e2 += w * (world.noise[hours, s] - e2.sum(axis=1))[:, None]
        evd = (world.beta[s] * ef.drift).reshape(24, 60)
        det = world.x[hours + 1, s] - world.x[hours, s] - evd.sum(axis=1) - world.noise[hours, s]
        path = world.x[hours, s][:, None] + np.cumsum(det[:, None] / 60 + evd + e2, axis=1)
        path[:, -1] = world.x[hours + 1, s]
        spot_log[s, 0] = world.x[h0, s]
        spot_log[s, 1:] = path.ravel()
        spot_sig[s], spot_e[s] = sig, e
    prem_a = world.prem[h0:h0 + 25]  # anchors at the 25 hour boundaries of the day
    frac = (np.arange(1, 61) / 60.0)[None, :]
    for inst in instruments:
        s = next(i for i, u in enumerate(world.und) if u is inst.underlying or u.base == inst.underlying.base)
        logp = spot_log[s].copy()
        if inst.is_perp:
            wig = np.cumsum(rng.standard_normal((24, 60)) * 2e-5 * (1 + 2 * ef.stress.reshape(24, 60)), axis=1)
            wig -= wig[:, -1:] * frac  # zero at both hour ends so anchors match across days
            prem_min = prem_a[:-1, s][:, None] * (1 - frac) + prem_a[1:, s][:, None] * frac + wig
            logp[0] += prem_a[0, s]
            logp[1:] += prem_min.ravel()
        i = inst.index
        price = _round(np.exp(logp), inst.price_decimals)
        o, c = price[:-1], price[1:]
        sig = 0.85 * spot_sig[s]  # range scale calibrated on (high - low) / |return| of real 1m bars
        delta = np.log(c / o)
        hi = o * np.exp((delta + np.sqrt(delta ** 2 - 2 * sig ** 2 * np.log(u_hi))) / 2)
        lo = o * np.exp((delta - np.sqrt(delta ** 2 - 2 * sig ** 2 * np.log(u_lo))) / 2)
        out["open"][i], out["close"][i] = o, c
        out["high"][i] = np.maximum(_round(hi, inst.price_decimals), np.maximum(o, c))
        out["low"][i] = np.maximum(np.minimum(_round(lo, inst.price_decimals), np.minimum(o, c)), inst.price_tick)
        zabs = np.abs(spot_e[s] / spot_sig[s])
        vol_ratio = spot_sig[s] / world.sigma[s]
        noise = rng.lognormal(-0.08, 0.4, MINUTES)
        v = (inst.underlying.volume_min * (PERP_VOLUME_MULT if inst.is_perp else 1.0) * vol_ratio ** 0.8
             * (0.6 + 0.4 * zabs) * (1 + 1.5 * ef.informed) * noise)
        units[i] = np.maximum(np.round(v / inst.amount_step), 5).astype(np.int64)
        out["volume"][i] = _round(units[i] * inst.amount_step, inst.amount_decimals)
        b = (0.5 + 0.2 * np.tanh(0.7 * spot_e[s] / spot_sig[s]) + 0.3 * ef.side * ef.informed
             + 0.06 * rng.standard_normal(MINUTES))
        out["buy_frac"][i] = np.clip(b, 0.03, 0.97)
        out["sigma"][i] = spot_sig[s]
    return DayChunk(day, ts, out["open"], out["high"], out["low"], out["close"], out["volume"], units,
                    out["buy_frac"], out["sigma"], regime, ef.informed, ef.side, ef.stress)
