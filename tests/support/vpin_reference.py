"""The textbook VPIN loop, kept as an independent oracle for `engine.risk.vpin` (tests and benchmarks).

Fill a bucket trade by trade, splitting a trade that overflows it and carrying the remainder into the next bucket;
then VPIN = rolling mean of |buy - sell| over `window` buckets / bucket volume (pandas rolling). It shares no code
with the production path, so agreement between the two is evidence that both are right.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def reference_buckets(amounts: Sequence[float], sides: Sequence[str], bucket_volume: float) -> list[float]:
    """Buy volume of each completed bucket, by the straightforward fill-and-carry loop."""
    if bucket_volume <= 0:
        raise ValueError(f"bucket_volume: must be > 0, got {bucket_volume}")
    buys: list[float] = []
    fill = 0.0
    buy = 0.0
    for amount, side in zip(amounts, sides):
        remaining = float(amount)
        while remaining > 0:
            room = bucket_volume - fill
            take = min(remaining, room)
            fill += take
            if side == "buy":
                buy += take
            remaining -= take
            if take >= room:
                buys.append(buy)
                fill = 0.0
                buy = 0.0
    return buys


def reference_vpin(amounts: Sequence[float], sides: Sequence[str], bucket_volume: float,
                   window: int) -> pd.DataFrame:
    """Per-bucket buy volume, imbalance and VPIN from the reference loop and a pandas rolling mean."""
    buys = np.array(reference_buckets(amounts, sides, bucket_volume))
    imbalance = np.abs(2.0 * buys - bucket_volume)
    vpin = pd.Series(imbalance).rolling(window).mean() / bucket_volume
    return pd.DataFrame({"buy_volume": buys, "imbalance": imbalance, "vpin": vpin.to_numpy()})
