"""A test-only strategy for the re-optimisation tests: hold one side (+1 long, -1 short) except on every `gap`-th bar, so on
a steadily rising synthetic market long beats short and a larger gap beats a smaller one (fewer round trips, more
time long): the ranking is the same in and out of sample, deterministically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_index


@dataclass(frozen=True)
class LeanConfig:
    """Which side to hold, flat every `gap`-th bar."""

    side: int = 1  # not searched: a champion may be configured short, every candidate is long
    gap: int = 2


class Lean(Strategy):
    """Holds `side` on every symbol, flat every `gap`-th bar."""

    name = "lean"
    display_name = "Lean (test)"
    Config = LeanConfig
    default_timeframe = "1h"
    warmup_bars = 1

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """The gap only (searching the side too would make the trials' Sharpe dispersion, and so the DSR's bar, huge)."""
        return {"gap": ParamSpec(2, 8, "int")}

    def validate_config(self, config: LeanConfig) -> None:
        """Side must be -1 or +1, gap at least 2."""
        if config.side not in (-1, 1) or config.gap < 2:
            raise ValueError(f"lean: need side in (-1, 1) and gap >= 2, got {config.side}, {config.gap}")

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """`side` everywhere except every `gap`-th bar."""
        check_panel(panel)
        index = panel_index(panel)
        side = np.full((len(index), len(panel)), self.config.side, dtype="int8")
        side[np.arange(len(index)) % self.config.gap == 0] = 0
        return pd.DataFrame(side, index=index, columns=list(panel))
