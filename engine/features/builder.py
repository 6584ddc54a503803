"""Assemble the standard point-in-time feature set for one bar frame or a whole panel (strategy and ML inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.features.alt_data import alt_data_features
from engine.features.carry import basis_features, funding_features
from engine.features.fracdiff import frac_diff_ffd
from engine.features.microstructure import amihud
from engine.features.panel import MICROSTRUCTURE_COLUMNS
from engine.features.returns import momentum_features, returns_features, zscore_features
from engine.features.volatility import volatility_features

_MICRO = MICROSTRUCTURE_COLUMNS
_NON_FEED = frozenset({"open", "high", "low", "close", "volume", "funding_rate", "basis", *_MICRO})


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to build and their horizons, in bars of the panel's timeframe."""

    return_horizons: tuple[int, ...] = (1, 4, 24, 96)
    zscore_windows: tuple[int, ...] = (24, 96)
    momentum_horizons: tuple[int, ...] = (24, 96, 336)
    vol_window: int = 24
    amihud_window: int = 24
    fracdiff_d: float | None = 0.4  # None skips; choose d with fracdiff.find_min_d on in-sample data
    fracdiff_width: int = 200
    funding_window: int = 90
    basis_window: int = 168
    feed_window: int = 30
    include_carry: bool = True
    include_feeds: bool = True

    def __post_init__(self) -> None:
        for name in ("return_horizons", "zscore_windows", "momentum_horizons"):
            values = getattr(self, name)
            if not values or any(int(v) < 1 for v in values):
                raise ValueError(f"FeatureSpec.{name}: expected positive bar counts, got {values}")
        for name in ("vol_window", "amihud_window", "funding_window", "basis_window", "feed_window"):
            if getattr(self, name) < 2:
                raise ValueError(f"FeatureSpec.{name}: must be >= 2")

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature has a value (ignoring carry and feeds, which start when their data starts)."""
        longest = max(max(self.return_horizons), max(self.zscore_windows), max(self.momentum_horizons) + 1,
                      self.vol_window * 8 + 1, self.amihud_window + 1)
        return longest + (self.fracdiff_width if self.fracdiff_d is not None else 0)


def build_features(frame: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Every feature of `spec` for one symbol's bar frame; column names are stable for model metadata."""
    spec = spec or FeatureSpec()
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing columns {missing}")
    close = frame["close"].astype("float64")
    parts = [returns_features(close, spec.return_horizons), zscore_features(close, spec.zscore_windows),
             momentum_features(close, spec.momentum_horizons), volatility_features(frame, spec.vol_window),
             amihud(frame, spec.amihud_window).to_frame()]
    if spec.fracdiff_d is not None:
        ffd = frac_diff_ffd(np.log(close), spec.fracdiff_d, threshold=1e-5, max_width=spec.fracdiff_width)
        parts.append(ffd.rename(f"ffd_{spec.fracdiff_d:g}").to_frame())
    if spec.include_carry:
        if "funding_rate" in frame.columns:
            parts.append(funding_features(frame, spec.funding_window))
        if "basis" in frame.columns:
            parts.append(basis_features(frame, spec.basis_window))
    micro = [c for c in _MICRO if c in frame.columns]
    if micro:  # already per-bar and point-in-time (load_panel(..., microstructure=True)): pass through
        parts.append(frame[micro].astype("float64"))
    if spec.include_feeds:
        feed_cols = [c for c in frame.columns if c not in _NON_FEED]
        feeds = alt_data_features(frame, columns=feed_cols, window=spec.feed_window) if feed_cols else None
        if feeds is not None and not feeds.empty:
            parts.append(feeds)
    out = pd.concat(parts, axis=1)
    out.index.name = "ts"
    return out.replace([np.inf, -np.inf], np.nan)
