"""Purged, embargoed k-fold and combinatorial purged cross-validation as sklearn splitters (AFML ch. 7, 12).

Triple-barrier labels span time: the label of an event that starts before a test block and ends inside it is built
from test-period prices. Ordinary k-fold lets such events into the training set, so the model is graded on
information it has already seen. These splitters remove (purge) every training event whose span [t0, t1] overlaps a
test block and, after each test block, an embargo of `embargo_pct` of the whole time range, because features built
from rolling windows carry test information forward for a while.

Both classes follow sklearn's cross-validator protocol (`split`, `get_n_splits`), so they plug into
`cross_val_score`, `GridSearchCV` and `CalibratedClassifierCV`. Rows of X must be in the order of `t1`
(events sorted by start time); `t1` is a Series indexed by event start with the event end as values.
"""

from __future__ import annotations

import itertools
from math import comb
from typing import Any, Iterator

import numpy as np
import pandas as pd


def _as_ns(values: Any, what: str) -> np.ndarray:
    """Timestamps (DatetimeIndex/Series, datetime64 arrays or integers) as int64 nanoseconds for comparisons."""
    if isinstance(values, (pd.Series, pd.Index)) and pd.api.types.is_datetime64_any_dtype(values):
        return pd.DatetimeIndex(values).as_unit("ns").asi8.copy()
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ns]").astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what}: expected timestamps or numbers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


class _PurgedBase:
    """Shared purge/embargo logic over event spans [t0, t1]."""

    def __init__(self, t1: pd.Series, embargo_pct: float) -> None:
        if not isinstance(t1, pd.Series):
            raise TypeError(f"t1: expected a pandas Series (index = event start, value = event end), "
                            f"got {type(t1).__name__}")
        if not 0.0 <= embargo_pct < 1.0:
            raise ValueError(f"embargo_pct: must be in [0, 1), got {embargo_pct}")
        self.t1 = t1
        self.embargo_pct = embargo_pct
        self._t0 = _as_ns(t1.index, "t1.index")
        self._t1 = _as_ns(t1, "t1")
        if len(self._t0) and np.any(np.diff(self._t0) < 0):
            raise ValueError("t1: index (event starts) must be sorted ascending")
        if np.any(self._t1 < self._t0):
            raise ValueError("t1: an event ends before it starts")
        span = int(self._t1.max() - self._t0.min()) if len(self._t0) else 0
        self._embargo = int(span * embargo_pct)

    def _check_x(self, X: Any) -> int:
        n = len(X)
        if n != len(self._t0):
            raise ValueError(f"X: has {n} rows but t1 has {len(self._t0)} events (rows must follow t1's order)")
        if isinstance(X, (pd.DataFrame, pd.Series)) and isinstance(X.index, pd.DatetimeIndex):
            if not np.array_equal(_as_ns(X.index, "X.index"), self._t0):
                raise ValueError("X: index differs from t1's index (rows must follow t1's order)")
        return n

    def _train_mask(self, test_blocks: list[tuple[int, int]], n: int) -> np.ndarray:
        """Training mask after removing each contiguous test block [i0, i1) with purge and embargo."""
        keep = np.ones(n, dtype=bool)
        for i0, i1 in test_blocks:
            start = self._t0[i0]
            end = self._t1[i0:i1].max()
            overlap = (self._t0 <= end) & (self._t1 >= start)  # purge: label span touches the test block
            embargo = (self._t0 > end) & (self._t0 <= end + self._embargo)
            keep &= ~(overlap | embargo)
            keep[i0:i1] = False
        return keep

    @staticmethod
    def _blocks(bounds: list[tuple[int, int]], chosen: tuple[int, ...]) -> list[tuple[int, int]]:
        """Merge chosen adjacent groups into contiguous [i0, i1) blocks."""
        blocks: list[tuple[int, int]] = []
        for g in sorted(chosen):
            i0, i1 = bounds[g]
            if blocks and blocks[-1][1] == i0:
                blocks[-1] = (blocks[-1][0], i1)
            else:
                blocks.append((i0, i1))
        return blocks

    @staticmethod
    def _bounds(n: int, k: int) -> list[tuple[int, int]]:
        edges = [len(a) for a in np.array_split(np.arange(n), k)]
        starts = np.concatenate([[0], np.cumsum(edges)])
        return [(int(starts[i]), int(starts[i + 1])) for i in range(k)]


class PurgedKFold(_PurgedBase):
    """K contiguous test folds in time order; training events overlapping a test fold are purged, then embargoed."""

    def __init__(self, n_splits: int = 5, t1: pd.Series | None = None, embargo_pct: float = 0.01) -> None:
        if n_splits < 2:
            raise ValueError(f"n_splits: must be >= 2, got {n_splits}")
        if t1 is None:
            raise ValueError("t1: required (event end times indexed by event start)")
        super().__init__(t1, embargo_pct)
        self.n_splits = n_splits

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds (sklearn protocol)."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) index arrays with purge and embargo applied."""
        n = self._check_x(X)
        if n < self.n_splits:
            raise ValueError(f"X: {n} rows cannot make {self.n_splits} folds")
        for i0, i1 in self._bounds(n, self.n_splits):
            train = np.flatnonzero(self._train_mask([(i0, i1)], n))
            yield train, np.arange(i0, i1)

    def __repr__(self) -> str:
        return f"PurgedKFold(n_splits={self.n_splits}, embargo_pct={self.embargo_pct}, n_events={len(self._t0)})"


class CombinatorialPurgedKFold(_PurgedBase):
    """Every choice of `n_test_groups` out of `n_groups` time groups as the test set (purged and embargoed)."""

    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, t1: pd.Series | None = None,
                 embargo_pct: float = 0.01) -> None:
        if n_groups < 2:
            raise ValueError(f"n_groups: must be >= 2, got {n_groups}")
        if not 1 <= n_test_groups < n_groups:
            raise ValueError(f"n_test_groups: must be in [1, {n_groups - 1}], got {n_test_groups}")
        if t1 is None:
            raise ValueError("t1: required (event end times indexed by event start)")
        super().__init__(t1, embargo_pct)
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """C(n_groups, n_test_groups) splits (sklearn protocol)."""
        return comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """How many complete backtest paths the splits assemble into: C(N, k) * k / N."""
        return comb(self.n_groups, self.n_test_groups) * self.n_test_groups // self.n_groups

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train, test) index arrays for every combination of test groups."""
        n = self._check_x(X)
        if n < self.n_groups:
            raise ValueError(f"X: {n} rows cannot make {self.n_groups} groups")
        bounds = self._bounds(n, self.n_groups)
        for chosen in itertools.combinations(range(self.n_groups), self.n_test_groups):
            blocks = self._blocks(bounds, chosen)
            train = np.flatnonzero(self._train_mask(blocks, n))
            test = np.concatenate([np.arange(i0, i1) for i0, i1 in blocks])
            yield train, test

    def __repr__(self) -> str:
        return (f"CombinatorialPurgedKFold(n_groups={self.n_groups}, n_test_groups={self.n_test_groups}, "
                f"embargo_pct={self.embargo_pct}, n_events={len(self._t0)})")
