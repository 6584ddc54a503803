"""Bar Cycle: long for `on` bars, flat for `off` bars, by bar time (a test strategy that trades on a fixed rhythm).

Why a test strategy: the engine tests that wait for "the next order" or "the next fill" check the engine (halts, kill
-9, restarts, several engines on one desk), not alpha. With a market strategy the wait for the next trade depends on
the simulated market at the hour the test runs (the simulator starts at the wall clock): quiet spells of minutes made
those tests slow and their timeouts a matter of luck. This one changes its side every few bars whatever the market
does, the same after a restart (the cycle is read off the bar's open time, not counted from the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


@dataclass(frozen=True)
class BarCycleConfig:
    """Bars long, then bars flat, repeated."""

    on: int = 3
    off: int = 3


class BarCycle(Strategy):
    """+1 for `on` bars, 0 for `off` bars, phase fixed by the bar's open time."""

    name = "bar_cycle"
    display_name = "Bar Cycle (test)"
    Config = BarCycleConfig
    default_timeframe = "1m"
    warmup_bars = 0

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Both lengths are searchable (for completeness; tests use the defaults)."""
        return {"on": ParamSpec(1, 60, "int"), "off": ParamSpec(1, 60, "int")}

    def features(self, panel: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """One-bar log return per symbol (what the meta-model would see)."""
        return {s: pd.DataFrame({"ret_1": np.log(df["close"]).diff()}, index=df.index) for s, df in panel.items()}

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """+1 where (bar number since the epoch) mod (on + off) < on, else 0; 0 where a symbol has no bar."""
        check_panel(panel)
        index = panel_index(panel)
        close = panel_field(panel, "close", index)
        step = int(np.median(np.diff(index.as_unit("ms").asi8))) if len(index) > 1 else 60_000
        bar = index.as_unit("ms").asi8 // max(step, 1)
        on = (bar % (self.config.on + self.config.off)) < self.config.on
        sides = np.where(on[:, None] & close.notna().to_numpy(), 1, 0).astype(np.int8)
        return pd.DataFrame(sides, index=index, columns=close.columns)
