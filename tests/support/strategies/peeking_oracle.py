"""A strategy that peeks one bar ahead on purpose, which the lookahead check must catch. Test-only: the CLI finds it
when tests put this folder on QUANTDESK_STRATEGY_PATH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


@dataclass(frozen=True)
class PeekingConfig:
    """The peeking strategy has no real parameters."""

    horizon: int = 1


class PeekingOracle(Strategy):
    """Goes long when the *next* bar closes higher: a lookahead bug on purpose, for the lookahead check's tests."""

    name = "peeking_oracle"
    display_name = "Peeking oracle (lookahead bug)"
    Config = PeekingConfig
    default_timeframe = "1h"
    warmup_bars = 0

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """How far ahead it peeks."""
        return {"horizon": ParamSpec(1, 5, "int")}

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """sign(close[t + horizon] - close[t]): uses future bars, so truncating history changes its last values."""
        close = panel_field(panel, "close")
        future = close.shift(-self.config.horizon)
        return np.sign((future - close).fillna(0.0)).astype("int8")
