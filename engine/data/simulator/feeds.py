"""Simulated macro, sentiment and on-chain feeds that co-move with the regimes, with realistic publication lags.

- macro: `risk_index` (daily; the slow macro factor that biases regime switches, plus the regime's risk appetite,
  minus the day's stress),
  published one hour after the UTC day closes.
- sentiment: `fear_greed` (daily integer 0-100 from the trailing 7-day and 1-day BTC moves and the macro factor),
  published five minutes after the day closes.
- onchain: `<BASE>_netflow` (hourly exchange net inflow in coins; inflows spike while informed sellers move coins to
  exchanges ahead of crashes, outflows dominate in up-trends), published 15 minutes after the hour closes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.data.simulator.events import MIN_MS, event_fields
from engine.data.simulator.world import DAY_MS, EPOCH_MS, HOUR_MS, World
from engine.data.source import FeedPoint

FEEDS = ("macro", "sentiment", "onchain")
REGIME_FLOW = np.array([-1.0, 1.0, 0.0])
REGIME_RISK = np.array([0.6, -0.6, 0.0])  # risk appetite shows in the index as well as driving the regimes
MACRO_LAG_MS = HOUR_MS
SENTIMENT_LAG_MS = 5 * MIN_MS
ONCHAIN_LAG_MS = 15 * MIN_MS


def _daily_range(since: int, until: int) -> np.ndarray:
    """Day indices whose start lies in [since, until)."""
    first = max(0, -(-(since - EPOCH_MS) // DAY_MS))
    last = (until - 1 - EPOCH_MS) // DAY_MS
    return np.arange(first, last + 1, dtype=np.int64)


def _hourly_range(since: int, until: int) -> np.ndarray:
    """Hour indices whose start lies in [since, until)."""
    first = max(0, -(-(since - EPOCH_MS) // HOUR_MS))
    last = (until - 1 - EPOCH_MS) // HOUR_MS
    return np.arange(first, last + 1, dtype=np.int64)


def risk_index(world: World, days: np.ndarray) -> np.ndarray:
    """Daily risk-on/off index for the given day indices."""
    world.ensure_hours(int(days.max()) * 24 + 26)
    hours = days[:, None] * 24 + np.arange(24)[None, :]
    return (world.macro[hours].mean(axis=1) + REGIME_RISK[world.regime[hours]].mean(axis=1)
            - 0.6 * world.stress_hour[hours].max(axis=1)
            + 0.15 * world.flow_noise[days * 24, 0])


def fear_greed(world: World, days: np.ndarray) -> np.ndarray:
    """Daily fear/greed value in 0-100 for the given day indices."""
    world.ensure_hours(int(days.max()) * 24 + 26)
    end = (days + 1) * 24
    ret7 = world.x[end, 0] - world.x[np.maximum(end - 168, 0), 0]
    ret1 = world.x[end, 0] - world.x[end - 24, 0]
    macro = world.macro[days[:, None] * 24 + np.arange(24)[None, :]].mean(axis=1)
    score = 0.35 * ret7 / 0.08 + 0.35 * ret1 / 0.03 + 0.3 * macro + 0.2 * world.flow_noise[days * 24, 1]
    return np.clip(np.round(50 + 45 * np.tanh(score)), 0, 100)


def netflow(world: World, und_index: int, hours: np.ndarray) -> np.ndarray:
    """Hourly exchange net inflow (coins) of one underlying for the given hour indices."""
    world.ensure_hours(int(hours.max()) + 3)
    t0 = EPOCH_MS + int(hours.min()) * HOUR_MS
    t1 = EPOCH_MS + (int(hours.max()) + 2) * HOUR_MS
    ts = np.arange(t0, t1, MIN_MS, dtype=np.int64)
    ef = event_fields(world.events_between(t0, t1), ts)
    selling = (ef.informed * (ef.side < 0)).reshape(-1, 60).mean(axis=1)
    rel = hours - hours.min()
    inflow = np.maximum(selling[rel], selling[rel + 1])
    scale = world.und[und_index].netflow_scale
    return scale * (0.35 * world.flow_noise[hours, 2 + und_index]
                    + 0.15 * REGIME_FLOW[world.regime[hours]] + 3.0 * inflow)


class SimFeed:
    """A FeedSource over the simulated world; only points published by simulated now are returned."""

    def __init__(self, world: World, feed: str, now_ms: Callable[[], int]) -> None:
        """Serve `feed` (macro | sentiment | onchain) from `world`, with `now_ms` giving simulated now."""
        if feed not in FEEDS:
            raise ValueError(f"feed: unknown feed {feed!r} (expected one of {', '.join(FEEDS)})")
        self.feed = feed
        self._world = world
        self._now = now_ms

    def series(self) -> tuple[str, ...]:
        """Names of the series this feed publishes."""
        if self.feed == "macro":
            return ("risk_index",)
        if self.feed == "sentiment":
            return ("fear_greed",)
        return tuple(f"{u.base}_netflow" for u in self._world.und)

    def fetch_feed(self, since: int | None = None, until: int | None = None) -> list[FeedPoint]:
        """Observations with ts in [since, until) already published at simulated now, oldest first."""
        now = int(self._now())
        since = EPOCH_MS if since is None else int(since)
        until = now + 1 if until is None else int(until)
        if until <= since:
            return []
        if self.feed in ("macro", "sentiment"):
            lag = MACRO_LAG_MS if self.feed == "macro" else SENTIMENT_LAG_MS
            days = _daily_range(since, until)
            days = days[EPOCH_MS + (days + 1) * DAY_MS + lag <= now]
            if days.size == 0:
                return []
            values = risk_index(self._world, days) if self.feed == "macro" else fear_greed(self._world, days)
            name = self.series()[0]
            return [FeedPoint(name, int(EPOCH_MS + d * DAY_MS), int(EPOCH_MS + (d + 1) * DAY_MS + lag), float(v))
                    for d, v in zip(days, values)]
        hours = _hourly_range(since, until)
        hours = hours[EPOCH_MS + (hours + 1) * HOUR_MS + ONCHAIN_LAG_MS <= now]
        if hours.size == 0:
            return []
        points = []
        for s, name in enumerate(self.series()):
            values = netflow(self._world, s, hours)
            points.extend(FeedPoint(name, int(EPOCH_MS + h * HOUR_MS), int(EPOCH_MS + (h + 1) * HOUR_MS
                                                                              + ONCHAIN_LAG_MS), float(round(v, 4)))
                          for h, v in zip(hours, values))
        points.sort(key=lambda p: (p.ts, p.series))
        return points
