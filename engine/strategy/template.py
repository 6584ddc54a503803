"""`quantdesk strategy new NAME`: a commented, runnable strategy module and a test for it, in the user's folder.

The folder is the first entry of QUANTDESK_STRATEGY_PATH, else `./user_strategies` (which discovery also searches when
it exists), so `quantdesk strategy new mystrat && quantdesk backtest mystrat` works in any working directory.
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path

from engine.strategy.registry import DEFAULT_USER_DIR, ENV_PATH, available

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

MODULE = '''"""{title}: a Donchian breakout (the starting point `quantdesk strategy new` writes; make it yours).

Thesis. Write here, in two or three sentences, why this should make money and when it should not. A breakout
strategy bets that a close beyond the range of the last `lookback` bars starts a move that continues; it loses in
choppy, mean-reverting markets, which is why it exits when the close falls back inside a shorter `exit_lookback`
range.

The contract (docs/strategies.md has the whole of it):
  * `signals(panel)` gets {{symbol: DataFrame}} with a UTC DatetimeIndex (bar open time) and columns open, high,
    low, close, volume (plus funding_rate / feed columns when stored, aligned as of publication) and returns a
    DataFrame on the union index, one column per symbol, values in {{-1, 0, +1}}.
  * The value at bar t may use data up to and including bar t's close only; the order fills at bar t+1. The
    lookahead check (`quantdesk strategy check {name}`) recomputes signals on truncated histories to prove it.
  * Vectorised: the optimiser calls `signals` hundreds of times. Use numpy/pandas and the helpers in
    engine.strategy.numeric (shift, rolling, ewm_mean, latch, warmup_mask).
  * Optional `weights(panel)`: target weights in [-1, 1]; fractional weights are allowed (0.5 = half the position
    the sizer gives a full signal). Backtest, walk-forward, paper and live all trade the weights. NaN, a wrong
    shape or a value outside [-1, 1] is a `strategy.error` naming this file and line, and the strategy trades flat.
  * Optional `stops()`: protective stop-loss / take-profit (engine.strategy.stops.Stops, fixed fractions of the
    entry price or k x ATR / realised vol at entry), honoured the same way by the backtester and by paper and live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from engine.strategy import numeric as _n
from engine.strategy.base import ParamSpec, Strategy, check_panel, panel_field, panel_index
from engine.strategy.stops import Stops


@dataclass(frozen=True)
class {cls}Config:
    """Parameters (windows in bars of the default timeframe)."""

    lookback: int = 48  # enter when the close breaks the range of this many previous bars
    exit_lookback: int = 24  # leave when the close falls back inside this shorter range
    allow_short: bool = True
    size: float = 1.0  # weight of a position, as a fraction of a full one (in (0, 1]; fractional is fine)
    stop_atr: float = 3.0  # protective stop this many ATR(14) from the entry price (0 = no stop)


class {cls}(Strategy):
    """Long above the previous `lookback`-bar high, short below the low; flat again inside `exit_lookback`."""

    name = "{name}"
    display_name = "{title}"
    Config = {cls}Config
    default_timeframe = "1h"

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """Search ranges for `quantdesk optimize` (keep it small: every dimension costs deflated-Sharpe trials)."""
        return {{"lookback": ParamSpec(10, 200, "int", bars=True),
                "exit_lookback": ParamSpec(5, 100, "int", bars=True)}}

    def validate_config(self, config: {cls}Config) -> None:
        """Reject parameter combinations that make no sense, naming them."""
        if not 2 <= config.exit_lookback <= config.lookback:
            raise ValueError(f"{name}: need 2 <= exit_lookback <= lookback, got "
                             f"exit_lookback={{config.exit_lookback}}, lookback={{config.lookback}}")
        if not 0.0 < config.size <= 1.0:
            raise ValueError(f"{name}: size must be in (0, 1], got {{config.size}}")
        if config.stop_atr < 0:
            raise ValueError(f"{name}: stop_atr must be >= 0 (0 = no stop), got {{config.stop_atr}}")

    def warmup(self) -> int:
        """Bars before the first meaningful signal."""
        return int(self.config.lookback) + 1

    def signals(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """+1 after a close above the previous `lookback`-bar high, -1 below the low, 0 inside the exit range."""
        check_panel(panel)
        index = panel_index(panel)
        close = panel_field(panel, "close", index).to_numpy(dtype="float64")
        # the range of the *previous* bars (shifted by one), so bar t compares its close with bars before it
        prev_close = _n.shift(close, 1)
        entry_hi = pd.DataFrame(prev_close).rolling(self.config.lookback).max().to_numpy()
        entry_lo = pd.DataFrame(prev_close).rolling(self.config.lookback).min().to_numpy()
        exit_hi = pd.DataFrame(prev_close).rolling(self.config.exit_lookback).max().to_numpy()
        exit_lo = pd.DataFrame(prev_close).rolling(self.config.exit_lookback).min().to_numpy()
        with np.errstate(invalid="ignore"):
            enter = np.where(close > entry_hi, 1.0, np.where(close < entry_lo, -1.0, np.nan))
            leave = (close < exit_hi) & (close > exit_lo)  # back inside the shorter range
        enter[leave & np.isnan(enter)] = 0.0
        sides = pd.DataFrame(enter).ffill().fillna(0.0).to_numpy(copy=True)  # hold a side until an exit or reversal
        if not self.config.allow_short:
            sides[sides < 0] = 0.0
        sides[~_n.warmup_mask(close, self.warmup_bars)] = 0.0
        return pd.DataFrame(sides.astype("int8"), index=index, columns=list(panel))

    def weights(self, panel: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Target weights in [-1, 1]: the side at `size` of a full position (delete this to trade whole ones)."""
        return self.signals(panel).astype("float64") * float(self.config.size)

    def stops(self) -> Stops | None:
        """A protective stop `stop_atr` x ATR(14) from the entry price, fixed at entry (None: no stop).

        Stops(stop_loss=0.02, take_profit=0.04) would be a fixed 2 % stop and 4 % take-profit instead."""
        if self.config.stop_atr <= 0:
            return None
        return Stops(stop_loss=float(self.config.stop_atr), scale="atr", window=14)
'''

TEST = '''"""Tests of the {name} strategy (run: python -m pytest {test_rel})."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.strategy.registry import load_strategy


def _panel(n: int = 600, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="ts")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    frame = pd.DataFrame({{"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                          "volume": rng.uniform(1, 10, n)}}, index=idx)
    return {{"BTC/USDT": frame}}


def test_signals_have_the_contract_shape_and_values() -> None:
    strategy = load_strategy("{name}")
    panel = _panel()
    sig = strategy.signals(panel)
    assert list(sig.columns) == ["BTC/USDT"] and sig.index.equals(panel["BTC/USDT"].index)
    assert set(np.unique(sig.to_numpy())) <= {{-1, 0, 1}}
    assert (sig.iloc[: strategy.warmup_bars] == 0).all().all()


def test_weights_are_fractions_in_range_and_stops_are_declared() -> None:
    strategy = load_strategy("{name}", {{"size": 0.5}})
    w = strategy.weights(_panel()).to_numpy()
    assert np.isfinite(w).all() and (np.abs(w) <= 1).all() and set(np.unique(np.abs(w))) <= {{0.0, 0.5}}
    assert strategy.stops() is not None


def test_signals_do_not_change_when_future_bars_are_removed() -> None:
    strategy = load_strategy("{name}")
    panel = _panel()
    full = strategy.signals(panel)
    cut = {{s: f.iloc[:400] for s, f in panel.items()}}
    assert strategy.signals(cut).equals(full.iloc[:400])
'''


def user_strategy_dir() -> Path:
    """Where new strategies go: the first QUANTDESK_STRATEGY_PATH entry, else ./user_strategies."""
    env = [p for p in os.environ.get(ENV_PATH, "").split(os.pathsep) if p]
    return Path(env[0]) if env else Path.cwd() / DEFAULT_USER_DIR


def new_strategy(name: str, folder: Path | None = None) -> tuple[Path, Path]:
    """Write NAME.py and tests/test_NAME.py into the user strategy folder; refuses bad or taken names."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(f"strategy name {name!r}: use 2-40 lowercase letters, digits and _ (starting with a letter)")
    if name in available():
        raise ValueError(f"strategy name {name!r} is taken (see `quantdesk strategy list`); choose another")
    folder = (folder or user_strategy_dir()).expanduser().resolve()
    module, test = folder / f"{name}.py", folder / "tests" / f"test_{name}.py"
    for path in (module, test):
        if path.exists():
            raise ValueError(f"{path} already exists; remove it or choose another name")
    title = name.replace("_", " ").title()
    cls = "".join(part.capitalize() for part in name.split("_"))
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    module.write_text(MODULE.format(name=name, title=title, cls=cls))
    test.write_text(TEST.format(name=name, test_rel=os.path.relpath(test)))
    return module, test
