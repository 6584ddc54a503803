"""SMA crossover: the vectorbt comparison case (benchmarks/bench_backtest.py) and the tests' reference strategy;
test-only (on QUANTDESK_STRATEGY_PATH for CLI tests). Long (or long/short) while the fast SMA is above the slow one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing simple moving average of each column (NaN for the first window-1 rows), by cumulative sums."""
    a = np.asarray(values, dtype="float64")
    out = np.full(a.shape, np.nan)
    if window > len(a):
        return out
    csum = np.cumsum(a, axis=0)
    out[window - 1] = csum[window - 1]
    out[window:] = csum[window:] - csum[:-window]
    out[window - 1:] /= window
    return out


@dataclass(frozen=True)
class SmaCrossConfig:
    """Parameters of the SMA crossover (windows in bars)."""

    fast: int = 10
    slow: int = 50
    long_only: bool = True


class SmaCross(Strategy):
    """Long (or long/short) while the fast SMA is above the slow SMA."""

    name = "sma_cross"
    display_name = "SMA crossover"
    Config = SmaCrossConfig
    default_timeframe = "1h"
    warmup_bars = 50

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Search ranges for the walk-forward optimiser."""
        return {"fast": ParamSpec(2, 50, "int"), "slow": ParamSpec(20, 300, "int"),
                "long_only": ParamSpec(kind="choice", choices=(True, False))}

    def validate_config(self, config: Any) -> None:
        """The fast window must be shorter than the slow one."""
        if not 1 <= config.fast < config.slow:
            raise ValueError(f"sma_cross: need 1 <= fast < slow, got fast={config.fast}, slow={config.slow}")

    def warmup(self) -> int:
        """The slow window."""
        return int(self.config.slow)

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """+1 while SMA(fast) > SMA(slow); -1 (or 0 when long-only) while below; 0 during warm-up."""
        check_panel(panel)
        index = panel_index(panel)
        close = panel_field(panel, "close", index).to_numpy(dtype="float64")
        fast = sma(close, self.config.fast)
        slow = sma(close, self.config.slow)
        with np.errstate(invalid="ignore"):
            side = np.where(fast > slow, 1, np.where(fast < slow, 0 if self.config.long_only else -1, 0))
        side[np.isnan(slow)] = 0
        return pd.DataFrame(side.astype("int8"), index=index, columns=list(panel))
