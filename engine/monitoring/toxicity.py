"""Live order-flow toxicity per symbol: a VpinTracker warmed on stored bars (BVC), then fed the source's trades.

The monitors job updates it; the readings go to the risk triggers (rule vpin_cdf) and to the live sizer, which
shrinks sizes as the VPIN CDF rises.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.config import Settings
from engine.store.db import Store

log = logging.getLogger("quantdesk.toxicity")
DAY_MS = 86_400_000


class ToxicityBook:
    """One VpinTracker per symbol; `cdf[symbol]` is the latest VPIN CDF (absent until both windows are full)."""

    def __init__(self, store: Store, settings: Settings, source: Any) -> None:
        self.store = store
        self.settings = settings
        self.source = source
        self.trackers: dict[str, Any] = {}
        self.cdf: dict[str, float] = {}
        self.vpin: dict[str, float] = {}

    def _tracker(self, symbol: str, timeframe: str) -> Any:
        """Create a tracker sized from a day of stored volume and warm it on stored bars."""
        from engine.risk.vpin import VpinTracker
        from engine.store.candles import load_candles

        now = self.source.milliseconds()
        bars = load_candles(self.store, self.source.id, symbol, timeframe, now - 3 * DAY_MS, now)
        if len(bars) < 10:
            return None
        span_days = max((bars.index[-1] - bars.index[0]).total_seconds() / 86_400, 1 / 24)
        daily = float(bars["volume"].sum()) / span_days
        risk = self.settings.risk
        tracker = VpinTracker(max(daily * risk.vpin_bucket_volume_frac, 1e-12), risk.vpin_window,
                              risk.vpin_cdf_window)
        tracker.update_bars(bars)
        tracker.last_ts = int(bars.index[-1].value // 1_000_000) + 60_000
        return tracker

    def update(self) -> dict[str, float]:
        """Feed each symbol's new public trades; returns the VPIN CDF per symbol (where known)."""
        timeframe = self.settings.data.timeframes[0]
        for symbol in self.settings.data.symbols:
            tr = self.trackers.get(symbol)
            if tr is None:
                tr = self._tracker(symbol, timeframe)
                if tr is None:
                    continue
                self.trackers[symbol] = tr
            try:
                trades = self.source.fetch_trades(symbol, since=int(tr.last_ts or 0) + 1)
            except Exception as exc:  # noqa: BLE001 - no tape this round: keep the last reading
                log.warning("trades for %s unavailable: %s", symbol, exc)
                continue
            if trades:
                tr.update(trades)
                tr.last_ts = max(int(t["timestamp"]) for t in trades)
            if tr.vpin == tr.vpin:  # not NaN
                self.vpin[symbol] = float(tr.vpin)
            # The CDF is reported only once its window is full: a CDF over a handful of buckets is near 1.0 far too
            # often and would trip the vpin_cdf trigger on noise.
            if tr.cdf == tr.cdf and tr.buckets_completed >= tr.window + tr.cdf_window:
                self.cdf[symbol] = float(tr.cdf)
        return dict(self.cdf)
