"""The simulator's per-bar taker-buy volume, cached on disk between retrains.

A retrain attaches kline taker-buy volume to two years of bars; from the simulator that means regenerating every
minute of those two years (~2,200 instrument-days: 80-90% of a retrain's CPU). A daily retrain's window moves by one
day, so nearly every bar's value was computed the day before. The value of a complete bar is a pure function of
(simulator seed and start price, symbol, bar): the cache stores it per bar, and a retrain computes only bars it has
not seen, with the same function over the same minutes (so the values are bit-for-bit the uncached ones). Only bars
that had closed in simulated time are stored; entries older than the requested window minus KEEP_MS are dropped.
The cache lives in a `cache/` folder beside state.db; without a local store nothing is cached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.clock import timeframe_ms

KEEP_MS = 30 * 86_400_000


def cache_folder(store: Any) -> Path | None:
    """`cache/flow` beside a SQLite state.db, None for a server store or an in-memory one."""
    path = getattr(store, "path", None)
    return None if path is None else Path(path).resolve().parent / "cache" / "flow"


def _key(source: Any, symbol: str, timeframe: str) -> str:
    inst = source._inst(symbol)  # the simulator's own instrument: its underlying's start price fixes the world
    price = inst.underlying.start_price
    safe = symbol.replace("/", "_").replace(":", "_")
    return f"sim-seed{int(source.seed)}-p{price:.10g}-{safe}-{timeframe}"


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            ts, val = z["ts"].astype(np.int64), z["flow"].astype(np.float64)
        if ts.shape == val.shape and (len(ts) < 2 or bool(np.all(np.diff(ts) > 0))):
            return ts, val
    except (OSError, KeyError, ValueError):
        pass  # missing or damaged: recompute (the cache only saves time)
    return np.zeros(0, np.int64), np.zeros(0)


def _write(path: Path, ts: np.ndarray, val: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, ts=ts, flow=val)
    os.replace(tmp, path)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def sim_flow(source: Any, symbol: str, timeframe: str, index: pd.DatetimeIndex, folder: Path | None) -> np.ndarray:
    """engine.ml.dataset.sim_taker_flow on `index`, from the disk cache where it has the bars."""
    from engine.ml.dataset import sim_taker_flow

    if folder is None or not hasattr(source, "_inst") or not len(index):
        return sim_taker_flow(source, symbol, timeframe, index).to_numpy()
    path = folder / f"{_key(source, symbol, timeframe)}.npz"
    opens = index.as_unit("ms").asi8
    cts, cval = _read(path)
    pos = np.minimum(np.searchsorted(cts, opens), max(len(cts) - 1, 0))
    hit = (pos < len(cts)) & (cts[pos] == opens) if len(cts) else np.zeros(len(opens), bool)
    out = np.empty(len(opens))
    out[hit] = cval[pos[hit]]
    if hit.all():
        return out
    for a, b in _runs(~hit):  # each run of bars not in the cache, over exactly its own minutes
        out[a:b] = sim_taker_flow(source, symbol, timeframe, index[a:b]).to_numpy()
    step = timeframe_ms(timeframe)
    closed = opens + step <= int(source.milliseconds())
    keep_from = int(opens[0]) - KEEP_MS
    old = cts >= keep_from
    ts = np.concatenate([cts[old], opens[~hit & closed]])
    val = np.concatenate([cval[old], out[~hit & closed]])
    order = np.argsort(ts, kind="stable")
    ts, val = ts[order], val[order]
    first = np.concatenate(([True], np.diff(ts) > 0))  # a bar once cached keeps its value
    try:
        _write(path, ts[first], val[first])
    except OSError:
        pass  # a read-only desk: no cache, same values
    return out
