"""Test strategies with a fixed rhythm, for the engine and live-on-twin tests: Bar Cycle and Steady Long.

Why: the tests that wait for "the next order", "a held position" or "the next fill" check the engine (halts, kill -9,
restarts, several engines on one desk, routing and protection on the exchange twin), not alpha. With a market
strategy those waits depended on the simulated market at the hour the test ran (the simulator and the twin start at
the wall clock): Quantum Momentum on the bars an engine backfills was flat for whole test runs at some hours, so the
tests were slow and passed or failed by time of day. These trade the same way whatever the market does, and the
same after a restart (the cycle is read off each bar's open time, not counted from the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


@dataclass(frozen=True)
class BarCycleConfig:
    """Bars long, then bars flat (off = 0: always long), repeated; `size` is the weight while long."""

    on: int = 3
    off: int = 3
    size: float = 1.0


class BarCycle(Strategy):
    """+1 for `on` bars, 0 for `off` bars, phase fixed by the bar's open time; weight `size` while long."""

    name = "bar_cycle"
    display_name = "Bar Cycle (test)"
    Config = BarCycleConfig
    default_timeframe = "1m"
    warmup_bars = 0

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """All three are searchable (for completeness; tests use the defaults)."""
        return {"on": ParamSpec(1, 60, "int"), "off": ParamSpec(0, 60, "int"), "size": ParamSpec(0.1, 1.0, "float")}

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

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """The side times `size`."""
        return self.signals(panel).astype("float64") * float(self.config.size)


@dataclass(frozen=True)
class SteadyLongConfig(BarCycleConfig):
    """Always long at half a position."""

    on: int = 1
    off: int = 0
    size: float = 0.5


class SteadyLong(BarCycle):
    """Long on every bar at weight 0.5 (a Bar Cycle with no flat bars): a position the tests can protect and kill."""

    name = "steady_long"
    display_name = "Steady Long (test)"
    Config = SteadyLongConfig
