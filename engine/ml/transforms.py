"""Feature transforms inside the meta-model's pipelines (module-level so fitted models pickle by reference): +-inf to
NaN, and quantile binning that gives HistGradientBoosting its cheap exact path under sample weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


def finite_or_nan(X: Any) -> Any:
    """Replace +-inf by NaN (both model families handle NaN natively); a pipeline step, so module-level."""
    if isinstance(X, pd.DataFrame):
        return X.replace([np.inf, -np.inf], np.nan)
    arr = np.asarray(X, dtype=float)
    return np.where(np.isfinite(arr), arr, np.nan)


class QuantileBinner(TransformerMixin, BaseEstimator):
    """Map each feature to its quantile-bin number (NaN stays NaN), fitted on training rows only.

    HistGradientBoosting bins features itself, but with sample weights it computes weighted percentiles per
    feature, which costs ~1 s per feature; features that arrive already binned take its cheap exact path. Trees
    only use the order of values, so binning at `n_bins` quantiles changes nothing but that cost.
    """

    def __init__(self, n_bins: int = 255) -> None:
        self.n_bins = n_bins

    def fit(self, X: Any, y: Any = None) -> "QuantileBinner":
        """Learn per-feature quantile edges, ignoring NaN."""
        arr = np.asarray(finite_or_nan(X), dtype=float)
        qs = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        self.edges_ = []
        self.empty_ = []  # features never seen in training: a constant 0 column (a tree cannot bin all-NaN)
        for j in range(arr.shape[1]):
            col = arr[:, j][np.isfinite(arr[:, j])]
            self.edges_.append(np.unique(np.quantile(col, qs)) if len(col) else np.zeros(0))
            self.empty_.append(not len(col))
        self.n_features_in_ = arr.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Bin numbers as floats, NaN where the input is missing."""
        arr = np.asarray(finite_or_nan(X), dtype=float)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X: expected {self.n_features_in_} features, got {arr.shape[1]}")
        out = np.empty_like(arr)
        for j, edges in enumerate(self.edges_):
            out[:, j] = np.searchsorted(edges, arr[:, j], side="right")
        out[~np.isfinite(arr)] = np.nan
        empty = np.asarray(getattr(self, "empty_", []), dtype=bool)
        if empty.any():
            out[:, empty] = 0.0
        return out
