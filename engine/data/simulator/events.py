"""Informed-flow episodes and the moves they precede, as pure functions of absolute minute timestamps.

An episode starts at `start` (a minute boundary). For `lead` minutes informed traders take one side (intensity ramps
0.5 -> 1.0) while the price drifts only a little (8 % of the move); then the move itself (92 %, front-loaded over
`duration` minutes) happens while flow stays one-sided (0.6). Crashes also rebound by a quarter over the next
2 x duration minutes, and leave market stress that decays with a 90-minute half-life. A "fizzle" episode has the same
flow but a tenth of the move, so order-flow signals are predictive but not perfect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_MS = 60_000
CRASH, PUMP = 0, 1
LEAD_DRIFT = 0.08  # share of the move that leaks into the price during the informed lead
REBOUND = 0.25  # share of a crash that is retraced afterwards
STRESS_HALF_LIFE_MIN = 90.0
TAIL_MIN = 600  # minutes after the move during which an episode still adds stress


@dataclass(frozen=True)
class EventTable:
    """Episodes in start order: start ms, lead/duration minutes, signed market log move, kind (CRASH/PUMP)."""

    start: np.ndarray  # int64 ms, minute aligned
    lead: np.ndarray  # int64 minutes
    duration: np.ndarray  # int64 minutes
    size: np.ndarray  # float64 signed log move of the market factor
    kind: np.ndarray  # int8

    def __len__(self) -> int:
        """Number of episodes."""
        return int(self.start.size)

    def span_end(self) -> np.ndarray:
        """Last minute (ms) at which each episode still influences drift, flow or stress."""
        return self.start + (self.lead + 3 * self.duration + TAIL_MIN) * MIN_MS

    def window(self, t0: int, t1: int) -> "EventTable":
        """Episodes whose influence overlaps [t0, t1)."""
        keep = (self.start < t1) & (self.span_end() >= t0)
        return EventTable(self.start[keep], self.lead[keep], self.duration[keep], self.size[keep], self.kind[keep])

    @staticmethod
    def concat(tables: list["EventTable"]) -> "EventTable":
        """Join tables (already in time order)."""
        if not tables:
            return EMPTY
        return EventTable(*(np.concatenate([getattr(t, f) for t in tables]) for f in
                            ("start", "lead", "duration", "size", "kind")))


EMPTY = EventTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                   np.zeros(0, np.int8))


@dataclass(frozen=True)
class EventFields:
    """Per-minute effects of the episodes: market drift, informed intensity and side, stress, crash window."""

    drift: np.ndarray
    informed: np.ndarray
    side: np.ndarray
    stress: np.ndarray
    crash: np.ndarray  # bool: inside a crash's move window


def event_fields(events: EventTable, ts: np.ndarray) -> EventFields:
    """Evaluate every episode's effect on the sorted minute-start timestamps `ts` (int64 ms)."""
    n = ts.size
    drift, informed, side, stress = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    crash = np.zeros(n, bool)
    if n == 0:
        return EventFields(drift, informed, side, stress, crash)
    sub = events.window(int(ts[0]), int(ts[-1]) + MIN_MS)
    for start, lead, dur, size, kind in zip(sub.start, sub.lead, sub.duration, sub.size, sub.kind):
        lo = int(np.searchsorted(ts, start))
        hi = int(np.searchsorted(ts, start + (lead + 3 * dur + TAIL_MIN) * MIN_MS))
        if hi <= lo:
            continue
        tau = (ts[lo:hi] - start) // MIN_MS
        in_lead = tau < lead
        in_move = (tau >= lead) & (tau < lead + dur)
        after = tau >= lead + dur
        w = np.exp(-3.0 * np.arange(dur) / dur)
        w /= w.sum()
        d = np.zeros(tau.size)
        d[in_lead] = LEAD_DRIFT * size / lead
        d[in_move] = (1.0 - LEAD_DRIFT) * size * w[tau[in_move] - lead]
        if kind == CRASH:
            reb = after & (tau < lead + 3 * dur)
            d[reb] = -REBOUND * size / (2 * dur)
            crash[lo:hi] |= in_move
        drift[lo:hi] += d
        inf = np.where(in_lead, 0.5 + 0.5 * tau / lead, np.where(in_move, 0.6, 0.0))
        stronger = inf > informed[lo:hi]
        informed[lo:hi] = np.where(stronger, inf, informed[lo:hi])
        side[lo:hi] = np.where(stronger, np.sign(size), side[lo:hi])
        amp = min(2.0, float(np.sqrt(abs(size) / 0.06))) * (1.0 if kind == CRASH else 0.4)
        decay = np.exp(-np.log(2.0) * np.maximum(tau - lead - dur, 0) / STRESS_HALF_LIFE_MIN)
        st = np.where(in_lead, 0.15 * amp * tau / lead, np.where(in_move, amp, amp * decay))
        stress[lo:hi] = np.maximum(stress[lo:hi], st)
    return EventFields(drift, informed, side, stress, crash)
