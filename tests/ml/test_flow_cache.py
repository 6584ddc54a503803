"""The simulator's taker-buy volume per bar, cached between retrains (engine/ml/flow_cache.py): a retrain used to
regenerate two years of minutes for it (80-90% of its CPU). Cached values are bit-for-bit the computed ones, a moved
window computes only its new bars, and a bar still forming is never stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.simulator import SimulatedExchange
from engine.ml.dataset import sim_taker_flow
from engine.ml.flow_cache import sim_flow

H = 3_600_000
DAY = 86_400_000


def _index(since: int, until: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.arange(since, until, H), unit="ms", utc=True), name="ts")


def test_cached_flow_equals_the_computed_flow_and_a_moved_window_computes_only_new_bars(tmp_path: Path,
                                                                                      monkeypatch) -> None:  # noqa: ANN001
    clock = {"s": 1_790_000_000.0}
    sim = SimulatedExchange(seed=5, clock=lambda: clock["s"], shared_cache=False)
    now = sim.milliseconds() // H * H
    folder = tmp_path / "cache" / "flow"
    first = _index(now - 12 * DAY, now + 3 * H)  # ends with bars still forming (and not yet begun) in simulated time
    got = sim_flow(sim, "ETH/USDT", "1h", first, folder)
    np.testing.assert_array_equal(got, sim_taker_flow(sim, "ETH/USDT", "1h", first).to_numpy())
    with np.load(next(folder.glob("*ETH_USDT-1h.npz"))) as z:
        assert z["ts"].max() == now - H  # the last closed bar; the forming one is not stored

    asked: list[tuple[int, int]] = []
    original = SimulatedExchange.minute_arrays

    def recording(self, symbol, since, until):  # noqa: ANN001, ANN202
        asked.append((since, until))
        return original(self, symbol, since, until)

    monkeypatch.setattr(SimulatedExchange, "minute_arrays", recording)
    clock["s"] += 2 * 86_400  # two days later (speed 1): the window moves by two days
    moved = _index(now - 10 * DAY, now + 2 * DAY)
    got = sim_flow(sim, "ETH/USDT", "1h", moved, folder)
    assert asked and min(a for a, _ in asked) >= now - H  # only the bars the cache could not hold were computed
    asked.clear()
    np.testing.assert_array_equal(got, sim_taker_flow(sim, "ETH/USDT", "1h", moved).to_numpy())
    assert sim_flow(sim, "ETH/USDT", "1h", moved, folder).tolist() == got.tolist()


def test_a_damaged_cache_file_is_recomputed(tmp_path: Path) -> None:
    sim = SimulatedExchange(seed=5, clock=lambda: 1_790_000_000.0, shared_cache=False)
    now = sim.milliseconds() // H * H
    folder = tmp_path / "flow"
    index = _index(now - 2 * DAY, now)
    want = sim_flow(sim, "BTC/USDT", "1h", index, folder)
    for path in folder.glob("*.npz"):
        path.write_bytes(b"not a cache")
    np.testing.assert_array_equal(sim_flow(sim, "BTC/USDT", "1h", index, folder), want)
