"""In-memory LRU caches of generated days, shared by every exchange instance on the same world.

Everything cached is a pure function of (seed, time), so sharing and eviction change speed only, never values.
Sizes keep a year-long pass over several symbols within a few hundred MB at most.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from engine.data.simulator.intraday import DayCommon, InstDay, SpotPath, day_common, instrument_day, spot_path
from engine.data.simulator.markets import Instrument
from engine.data.simulator.microstructure import Tape, trades_for_day
from engine.data.simulator.world import EPOCH_MS, HOUR_MS, World


class _Lru:
    """A small LRU map."""

    def __init__(self, size: int) -> None:
        """Keep at most `size` entries."""
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The cached value for key, made (and cached) on a miss."""
        hit = self.data.get(key)
        if hit is not None:
            self.data.move_to_end(key)
            return hit
        value = make()
        self.data[key] = value
        while len(self.data) > self.size:
            self.data.popitem(last=False)
        return value


class DayStore:
    """Generated days of one world: market-wide fields, spot paths, instrument bars, tapes and hourly bars."""

    def __init__(self, world: World, instruments: tuple[Instrument, ...]) -> None:
        """Cache days of `world` for `instruments` (ordered by Instrument.index)."""
        self.world = world
        self.instruments = instruments
        self._und = {u.base: i for i, u in enumerate(world.und)}
        self._lock = threading.RLock()
        # Sizes per entry: a day's common fields ~117 KB, a spot path ~35 KB, an instrument's minute bars ~92 KB, a
        # tape ~1.4 MB, an hourly day ~1.2 KB. Regenerating a day costs ~1 ms (a tape ~10 ms), so a few days per
        # instrument are enough for paging through a day and for a live engine's today and yesterday; caps of
        # months (64 common days, 600 bar-days) let a long-running engine grow ~0.8 MB per simulated day for
        # ~100 days. At these caps the minute-level caches hold at most ~30 MB and fill in ~8 simulated days.
        self._common = _Lru(8)
        self._spot = _Lru(8 * len(world.und))
        self._bars = _Lru(8 * max(len(instruments), 1))
        self._tapes = _Lru(12)
        self._hourly = _Lru(20_000)  # ~27 MB at most; a year of 6 instruments is ~2,200 entries

    def cached_bytes(self) -> dict[str, int]:
        """Bytes of numpy data held per cache (common, spot, bars, tapes, hourly): what the caps bound."""
        def size(value: Any) -> int:
            if isinstance(value, np.ndarray):
                return value.nbytes
            return sum(v.nbytes for v in vars(value).values() if isinstance(v, np.ndarray))
        with self._lock:
            return {name: sum(size(v) for v in lru.data.values()) for name, lru in (
                ("common", self._common), ("spot", self._spot), ("bars", self._bars), ("tapes", self._tapes),
                ("hourly", self._hourly))}

    def und_index(self, inst: Instrument) -> int:
        """Index of an instrument's underlying in the world."""
        return self._und[inst.underlying.base]

    def common(self, day: int) -> DayCommon:
        """The market-wide fields of a day."""
        with self._lock:
            return self._common.get(day, lambda: day_common(self.world, day))

    def spot(self, day: int, s: int) -> SpotPath:
        """Underlying s's minute path for a day."""
        with self._lock:
            return self._spot.get((day, s), lambda: spot_path(self.world, self.common(day), s))

    def bars(self, inst_index: int, day: int) -> InstDay:
        """An instrument's 1m bars for a day."""
        inst = self.instruments[inst_index]
        s = self.und_index(inst)
        with self._lock:
            return self._bars.get((inst_index, day), lambda: instrument_day(
                self.world, self.common(day), self.spot(day, s), s, inst))

    def tape(self, inst_index: int, day: int) -> Tape:
        """An instrument's trade tape for a day."""
        with self._lock:
            return self._tapes.get((inst_index, day), lambda: trades_for_day(
                self.common(day), self.bars(inst_index, day), self.instruments[inst_index], self.world.seed))

    def hourly(self, inst_index: int, day: int) -> np.ndarray:
        """An instrument's complete day as 24 hourly rows (ts, o, h, l, c, v), aggregated from its 1m bars."""
        def make() -> np.ndarray:
            b = self.bars(inst_index, day)
            ts = EPOCH_MS + day * 24 * HOUR_MS + np.arange(24, dtype=np.int64) * HOUR_MS
            dec = self.instruments[inst_index].amount_decimals
            return np.column_stack([ts, b.open[::60], b.high.reshape(24, 60).max(axis=1),
                                    b.low.reshape(24, 60).min(axis=1), b.close[59::60],
                                    np.round(b.volume.reshape(24, 60).sum(axis=1), dec)])
        with self._lock:
            return self._hourly.get((inst_index, day), make)
