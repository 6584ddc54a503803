"""Steady Long: long every symbol after a short warm-up, at a fixed weight (the live-on-twin tests' strategy).

Why a test strategy: the exchange-twin tests check order routing, protection, recovery and books, not alpha. With a
market strategy (Quantum Momentum on 1m bars) whether the desk holds BTC within the test's first minutes depends on
the simulated market at the hour the test runs (the twin's market starts at the wall clock), so those tests passed
or failed by time of day. This one always wants the same long position, so each test's path does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


@dataclass(frozen=True)
class SteadyLongConfig:
    """Parameters: bars before the first entry and the weight held."""

    warmup: int = 5
    size: float = 0.5


class SteadyLong(Strategy):
    """Long after `warmup` bars at weight `size`, whatever the market does."""

    name = "steady_long"
    display_name = "Steady Long (test)"
    Config = SteadyLongConfig
    default_timeframe = "1m"
    warmup_bars = 5

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """The weight is the only tunable."""
        return {"size": ParamSpec(0.1, 1.0, "float")}

    def warmup(self) -> int:
        """Bars before the first entry."""
        return int(self.config.warmup)

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """One-bar log return per symbol (what the meta-model would see)."""
        return {s: pd.DataFrame({"ret_1": np.log(df["close"]).diff()}, index=df.index) for s, df in panel.items()}

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """+1 on every bar after the warm-up, 0 before it."""
        check_panel(panel)
        index = panel_index(panel)
        close = panel_field(panel, "close", index)
        sides = np.where(close.notna().cumsum().to_numpy() > self.warmup(), 1, 0).astype(np.int8)
        return pd.DataFrame(sides, index=index, columns=close.columns)

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The side times the fixed size."""
        return self.signals(panel).astype("float64") * float(self.config.size)
