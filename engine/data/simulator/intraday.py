"""One simulated UTC day of 1m bars, bridged to the coarse hourly anchors, generated per instrument on demand.

Random streams (so any subset can be generated alone and a day is identical whenever it is generated):
`(seed, 2, day)` the market-wide part (fast minute vol factor, common Student-t factor, high/low uniforms),
`(seed, 5, day, underlying)` an asset's own noise, `(seed, 6, day, instrument)` an instrument's perp wiggle,
volume and flow noise. Minute returns are Student-t noise scaled by (hourly vol x intraday seasonality x fast vol x
stress), with a common market factor, plus the episodes' drift. Each hour's noise is bridged (variance-weighted) to
the coarse hour's noise so the minute path ends exactly on the next hourly anchor; the perp is the spot times
exp(premium), the premium interpolated between hourly anchors plus a wiggle pinned to zero at each hour boundary.
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
RANGE_SCALE = 0.85  # high/low excursion scale, calibrated on (high - low) / |return| of real 1m bars


@dataclass(frozen=True)
class DayCommon:
    """The market-wide part of a day: minute times, truth, and shared random factors."""

    day: int
    ts: np.ndarray  # int64 minute open times
    regime: np.ndarray  # int8 index into REGIMES (3 = crash)
    informed: np.ndarray
    side: np.ndarray
    stress: np.ndarray
    drift: np.ndarray  # market-level episode drift per minute
    base: np.ndarray  # seasonality x stress multiplier of minute vol
    g: np.ndarray  # fast minute vol factor
    z: np.ndarray  # common standardised Student-t factor
    u_hi: np.ndarray
    u_lo: np.ndarray


@dataclass(frozen=True)
class SpotPath:
    """An underlying's minute log-price path (1441 boundary values), minute vol and noise for one day."""

    log_price: np.ndarray
    sigma: np.ndarray
    noise: np.ndarray


@dataclass(frozen=True)
class InstDay:
    """One instrument's 1m bars for a day."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # base units, a multiple of the amount step
    units: np.ndarray  # int64 volume in amount steps (the trade tape splits this exactly)
    buy_frac: np.ndarray  # taker-buy share of the minute's volume
    sigma: np.ndarray  # the minute's log-return volatility


def day_common(world: World, day: int) -> DayCommon:
    """The market-wide minute fields of day `day` (days since EPOCH)."""
    if day < 0:
        raise ValueError(f"day: {day} is before the simulator epoch")
    h0 = day * 24
    world.ensure_hours(h0 + 26)
    rng = np.random.default_rng([world.seed, 2, day])
    ts = EPOCH_MS + day * DAY_MS + np.arange(MINUTES, dtype=np.int64) * MIN_MS
    ef = event_fields(world.events_between(int(ts[0]), int(ts[-1]) + MIN_MS), ts)
    fast = _ar1(rng.standard_normal(MINUTES) * FAST_STD * math.sqrt(1 - FAST_PHI ** 2), FAST_PHI,
                np.array([rng.standard_normal() * FAST_STD / FAST_PHI]))
    z = std_t(rng, 5.0, MINUTES)
    u_hi, u_lo = np.maximum(rng.random((2, MINUTES)), 1e-12)  # log(0) would give an infinite high/low
    hidx = np.arange(MINUTES) // 60
    regime = np.where(ef.crash, 3, world.regime[h0 + hidx]).astype(np.int8)
    return DayCommon(day, ts, regime, ef.informed, ef.side, ef.stress, ef.drift,
                     season(ts) * (1 + STRESS_VOL * ef.stress), np.exp(fast - FAST_STD ** 2), z, u_hi, u_lo)


def spot_path(world: World, common: DayCommon, s: int) -> SpotPath:
    """Underlying `s`'s minute log prices for the day, landing exactly on every hourly anchor."""
    rng = np.random.default_rng([world.seed, 5, common.day, s])
    h0 = common.day * 24
    hours = h0 + np.arange(24)
    sig = world.sigma[s] * np.repeat(np.exp(world.logvol[hours]), 60) * common.base * common.g
    load = world.loading[s]
    e = sig * (load * common.z + math.sqrt(1 - load ** 2) * std_t(rng, 5.0, MINUTES))
    e2 = e.reshape(24, 60).copy()
    w = (sig ** 2).reshape(24, 60)
    w = w / w.sum(axis=1, keepdims=True)
    e2 += w * (world.noise[hours, s] - e2.sum(axis=1))[:, None]
    evd = (world.beta[s] * common.drift).reshape(24, 60)
    det = world.x[hours + 1, s] - world.x[hours, s] - evd.sum(axis=1) - world.noise[hours, s]
    path = world.x[hours, s][:, None] + np.cumsum(det[:, None] / 60 + evd + e2, axis=1)
    path[:, -1] = world.x[hours + 1, s]
    return SpotPath(np.concatenate([[world.x[h0, s]], path.ravel()]), sig, e)


def instrument_day(world: World, common: DayCommon, spot: SpotPath, s: int, inst: Instrument) -> InstDay:
    """One instrument's bars for the day, from its underlying's path (times exp(premium) for the perp)."""
    rng = np.random.default_rng([world.seed, 6, common.day, inst.index])
    h0 = common.day * 24
    logp = spot.log_price.copy()
    if inst.is_perp:
        prem_a = world.prem[h0:h0 + 25, s]  # anchors at the 25 hour boundaries of the day
        frac = (np.arange(1, 61) / 60.0)[None, :]
        wig = np.cumsum(rng.standard_normal((24, 60)) * 2e-5 * (1 + 2 * common.stress.reshape(24, 60)), axis=1)
        wig -= wig[:, -1:] * frac  # zero at both hour ends so anchors match across days
        logp[0] += prem_a[0]
        logp[1:] += (prem_a[:-1, None] * (1 - frac) + prem_a[1:, None] * frac + wig).ravel()
    dec = inst.price_decimals
    price = np.round(np.exp(logp), dec)
    o, c = price[:-1], price[1:]
    sig = RANGE_SCALE * spot.sigma
    delta = np.log(c / o)
    hi = o * np.exp((delta + np.sqrt(delta ** 2 - 2 * sig ** 2 * np.log(common.u_hi))) / 2)
    lo = o * np.exp((delta - np.sqrt(delta ** 2 - 2 * sig ** 2 * np.log(common.u_lo))) / 2)
    high = np.maximum(np.round(hi, dec), np.maximum(o, c))
    low = np.maximum(np.minimum(np.round(lo, dec), np.minimum(o, c)), inst.price_tick)
    zn = spot.noise / spot.sigma
    vol = (inst.underlying.volume_min * (PERP_VOLUME_MULT if inst.is_perp else 1.0)
           * (spot.sigma / world.sigma[s]) ** 0.8 * (0.6 + 0.4 * np.abs(zn)) * (1 + 1.5 * common.informed)
           * rng.lognormal(-0.08, 0.4, MINUTES))
    units = np.maximum(np.round(vol / inst.amount_step), 5).astype(np.int64)
    buy = (0.5 + 0.2 * np.tanh(0.7 * zn) + 0.3 * common.side * common.informed
           + 0.06 * rng.standard_normal(MINUTES))
    return InstDay(o, high, low, c, np.round(units * inst.amount_step, inst.amount_decimals), units,
                   np.clip(buy, 0.03, 0.97), spot.sigma)
