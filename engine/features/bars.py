"""Bar timing shared by the panel loader and the feature modules: when each bar's data is complete."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.clock import timeframe_ms


def index_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Epoch ms of each bar's open time."""
    return np.asarray(index.as_unit("ms").asi8, dtype="int64")


def bar_close_ms(index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    """Epoch ms at which each bar closes (open + timeframe): the moment its data is complete."""
    return index_ms(index) + timeframe_ms(timeframe)
