"""Time helpers: epoch milliseconds everywhere, and timeframe arithmetic shared by all packages."""

from __future__ import annotations

import time

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (ccxt's unit)."""
    return int(time.time() * 1000)


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in a ccxt timeframe string such as '1m', '4h', '1d'."""
    if len(timeframe) < 2 or timeframe[-1] not in _UNIT_MS or not timeframe[:-1].isdigit():
        raise ValueError(f"timeframe: unknown timeframe {timeframe!r} (expected e.g. 1m, 5m, 1h, 4h, 1d)")
    return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]


def parse_duration_ms(text: str) -> int:
    """Parse a look-back such as '30d', '12h', '90m' or '2w' into milliseconds."""
    return timeframe_ms(text.strip())


def floor_ts(ts_ms: int, timeframe: str) -> int:
    """Start of the bar containing ts_ms."""
    step = timeframe_ms(timeframe)
    return ts_ms - ts_ms % step
