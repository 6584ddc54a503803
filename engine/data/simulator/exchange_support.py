"""Helpers behind `SimulatedExchange`: the process-wide day caches, ccxt argument checks and bar aggregation."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timezone

import numpy as np

from engine.data.simulator.cache import DayStore
from engine.data.simulator.markets import UNDERLYINGS, Instrument, Underlying
from engine.data.simulator.world import EPOCH_MS, World

DEFAULT_LIMIT = 1000  # bars / trades / funding records when no limit is given, like an exchange's page size


def iso8601(ts_ms: int) -> str:
    """ccxt-style ISO 8601 string of an epoch-ms timestamp."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(ts_ms) % 1000:03d}Z"


_STORES: OrderedDict[tuple[int, float], DayStore] = OrderedDict()
_STORES_LOCK = threading.Lock()
_STORE_CACHE = 4


def store_for(seed: int, btc: Underlying, instruments: tuple[Instrument, ...], shared: bool) -> DayStore:
    """The process-wide world and day caches for (seed, BTC start price), or private ones."""
    key = (seed, btc.start_price)
    with _STORES_LOCK:
        if shared and key in _STORES:
            _STORES.move_to_end(key)
            return _STORES[key]
        store = DayStore(World(seed, (btc,) + UNDERLYINGS[1:]), instruments)
        if shared:
            _STORES[key] = store
            while len(_STORES) > _STORE_CACHE:
                _STORES.popitem(last=False)
        return store


def check_limit(limit: int | None) -> int:
    """Validate a ccxt `limit` argument."""
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: must be a positive integer, got {limit!r}")
    return int(limit)


def aggregate(rows: np.ndarray, step: int, amount_decimals: int) -> np.ndarray:
    """Aggregate 1m rows (ts, o, h, l, c, v) into `step`-ms bars aligned to the epoch (so to UTC days)."""
    key = (rows[:, 0].astype(np.int64) - EPOCH_MS) // step
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], rows.shape[0]] - 1
    out = np.empty((starts.size, 6))
    out[:, 0] = key[starts] * step + EPOCH_MS
    out[:, 1] = rows[starts, 1]
    out[:, 2] = np.maximum.reduceat(rows[:, 2], starts)
    out[:, 3] = np.minimum.reduceat(rows[:, 3], starts)
    out[:, 4] = rows[ends, 4]
    out[:, 5] = np.round(np.add.reduceat(rows[:, 5], starts), amount_decimals)
    return out
