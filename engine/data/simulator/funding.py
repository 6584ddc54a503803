"""Perpetual funding tied to the simulated premium, with Binance's formula and 8-hour schedule.

F = P + clamp(I - P, -0.05 %, +0.05 %), capped at +/-0.3 %, where P is the mean premium of (perp / spot - 1) over the
eight hours before the funding time and I = 0.01 % is the interest component. Small premiums therefore give exactly
0.01 %, as on real venues; bull regimes push funding up and crashes drive it negative.
"""

from __future__ import annotations

import numpy as np

from engine.data.simulator.world import EPOCH_MS, HOUR_MS, World

FUNDING_INTERVAL_MS = 8 * HOUR_MS
INTEREST = 1e-4
CLAMP = 5e-4
CAP = 3e-3


def _formula(premium: np.ndarray) -> np.ndarray:
    """Binance funding formula on average premiums."""
    rate = premium + np.clip(INTEREST - premium, -CLAMP, CLAMP)
    return np.round(np.clip(rate, -CAP, CAP), 8)


def funding_times(since: int, until: int) -> np.ndarray:
    """Funding timestamps (00:00, 08:00, 16:00 UTC) in [since, until], never before the epoch's first one."""
    first = max(int(since), EPOCH_MS + FUNDING_INTERVAL_MS)
    first = -(-(first - EPOCH_MS) // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS + EPOCH_MS
    if first > until:
        return np.zeros(0, np.int64)
    return np.arange(first, int(until) + 1, FUNDING_INTERVAL_MS, dtype=np.int64)


def settled_rates(world: World, und_index: int, times: np.ndarray) -> np.ndarray:
    """Funding rates settled at `times` (each a funding timestamp) for one underlying's perpetual."""
    if times.size == 0:
        return np.zeros(0)
    end_h = (times - EPOCH_MS) // HOUR_MS
    world.ensure_hours(int(end_h.max()) + 2)
    idx = end_h[:, None] - np.arange(1, 9)[None, :]
    return _formula(world.prem[idx, und_index].mean(axis=1))


def predicted_rate(world: World, und_index: int, now_ms: int) -> tuple[float, int]:
    """The rate the next funding would settle at given the premium so far, and that funding's timestamp."""
    prev = EPOCH_MS + ((int(now_ms) - EPOCH_MS) // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    nxt = prev + FUNDING_INTERVAL_MS
    h_prev = (prev - EPOCH_MS) // HOUR_MS
    h_now = (int(now_ms) - EPOCH_MS) // HOUR_MS
    world.ensure_hours(h_now + 2)
    window = world.prem[h_prev:h_now + 1, und_index]
    return float(_formula(np.array([window.mean()]))[0]), int(nxt)
