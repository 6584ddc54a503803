"""Resample-on-load: build a timeframe that is not stored from a lower stored one (1m -> 1h -> 4h -> 1d).

Rule (stated in every report that uses it): bars are bucketed by UTC epoch-aligned intervals [t, t + timeframe),
labelled by their open time t (as every bar here is); open = first, high = max, low = min, close = last,
volume = sum; every other column (funding, basis, feeds) takes the bucket's last value, which was known before the
last lower bar closed, i.e. before the built bar's close, so the panel stays point-in-time. A bucket with fewer
lower bars than it should hold (a gap, or the ragged first/last bucket) is dropped, never half-built.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from engine.clock import timeframe_ms

OHLCV_RULES = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def base_timeframe(stored: Iterable[str], timeframe: str) -> str | None:
    """The largest stored timeframe below `timeframe` that divides it evenly (None when none can build it)."""
    step = timeframe_ms(timeframe)
    fits = [tf for tf in set(stored) if timeframe_ms(tf) < step and step % timeframe_ms(tf) == 0]
    return max(fits, key=timeframe_ms) if fits else None


def rule_text(base: str, timeframe: str) -> str:
    """The resampling rule in one sentence, for reports and summaries."""
    per = timeframe_ms(timeframe) // timeframe_ms(base)
    return (f"{timeframe} bars resampled on load from stored {base} bars: UTC epoch-aligned buckets labelled by open "
            f"time; open=first, high=max, low=min, close=last, volume=sum, other columns last; buckets with fewer "
            f"than {per} {base} bars dropped")


def resample_bars(frame: pd.DataFrame, base: str, timeframe: str) -> tuple[pd.DataFrame, int]:
    """(bars of `timeframe` built from `frame` of `base` bars, number of incomplete buckets dropped)."""
    step, base_step = timeframe_ms(timeframe), timeframe_ms(base)
    if step % base_step or step <= base_step:
        raise ValueError(f"timeframe: {timeframe} cannot be built from {base} bars (not a whole multiple)")
    if len(frame) == 0:
        return frame.copy(), 0
    rules = {c: OHLCV_RULES.get(c, "last") for c in frame.columns}
    grouped = frame.resample(f"{step}ms", label="left", closed="left", origin="epoch")
    out = grouped.agg(rules)
    counts = grouped.size()
    full = counts == step // base_step
    dropped = int(((counts > 0) & ~full).sum())
    out = out[full.reindex(out.index, fill_value=False)]
    out.index.name = frame.index.name
    return out, dropped


def resample_panel(panel: Mapping[str, pd.DataFrame], base: str, timeframe: str) -> tuple[dict[str, pd.DataFrame], int]:
    """Resample every symbol's bars; returns the panel and the total of dropped incomplete buckets."""
    out, dropped = {}, 0
    for sym, frame in panel.items():
        out[sym], n = resample_bars(frame, base, timeframe)
        dropped += n
    return out, dropped
