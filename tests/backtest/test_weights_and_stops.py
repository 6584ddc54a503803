"""Richer strategy output in research: fractional weights in [-1, 1] and a strategy's own protective stops flow
through run_backtest and the walk-forward evaluation; bad weights are refused naming the strategy's file and line."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

from engine.backtest.engine import Barriers, run_backtest
from engine.backtest.sizing import fixed_fraction
from engine.backtest.walkforward import Window, evaluate_params, window_market
from engine.config import BacktestConfig
from engine.strategy.base import ParamSpec, Strategy
from engine.strategy.stops import Stops

NO_COSTS = BacktestConfig(fee_taker=0.0, fee_maker=0.0, half_spread_bps=0.0, impact_coef=0.0)
SYM = "BTC/USDT"


def _panel(opens: list[float], highs: list[float] | None = None, lows: list[float] | None = None) -> dict:
    o = np.array(opens, dtype=float)
    idx = pd.date_range("2024-01-01", periods=len(o), freq="1h", tz="UTC", name="ts")
    h = np.array(highs, dtype=float) if highs is not None else o * 1.001
    lo = np.array(lows, dtype=float) if lows is not None else o * 0.999
    return {SYM: pd.DataFrame({"open": o, "high": h, "low": lo, "close": o, "volume": 1000.0}, index=idx)}


@dataclasses.dataclass(frozen=True)
class HalfConfig:
    """Parameters of the test strategy."""

    weight: float = 0.5
    stop: float = 0.0  # 0 = no stops
    atr_k: float = 0.0  # > 0: ATR-scaled stop (k x ATR(3) / close)


class Half(Strategy):
    """Long `weight` from bar 1 on: a fractional-weight strategy with optional stops."""

    name = "half_weights"
    Config = HalfConfig

    @classmethod
    def param_space(cls) -> dict[str, ParamSpec]:
        """One searched parameter."""
        return {"weight": ParamSpec(0.1, 1.0, "float")}

    def signals(self, panel):  # noqa: ANN001, ANN201
        idx = next(iter(panel.values())).index
        out = pd.DataFrame({SYM: np.r_[0, np.ones(len(idx) - 1)].astype("int8")}, index=idx)
        out.index.name = "ts"
        return out

    def weights(self, panel):  # noqa: ANN001, ANN201
        return self.signals(panel).astype("float64") * self.config.weight

    def stops(self) -> Stops | None:
        if self.config.atr_k > 0:
            return Stops(stop_loss=self.config.atr_k, scale="atr", window=3)
        return Stops(stop_loss=self.config.stop) if self.config.stop > 0 else None


def test_fractional_weight_takes_that_fraction_of_the_sized_position() -> None:
    """weight 0.5 with a fixed-fraction sizer of 1.0 commits half the equity at the next open."""
    panel = _panel([100.0] * 5 + [110.0] * 5)
    full = run_backtest(Half(weight=1.0), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    half = run_backtest(Half(weight=0.5), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    assert half.targets[SYM].iloc[1] == 0.5
    assert half.fills["qty"].iloc[0] == pytest.approx(full.fills["qty"].iloc[0] / 2, rel=1e-12)
    assert half.equity.iloc[-1] - 100_000.0 == pytest.approx((full.equity.iloc[-1] - 100_000.0) / 2, rel=1e-9)


def test_weights_outside_the_range_name_the_file_and_line() -> None:
    panel = _panel([100.0] * 10)
    with pytest.raises(ValueError) as err:
        run_backtest(Half(weight=1.5), panel, NO_COSTS, lookahead=False)
    line = inspect.getsourcelines(Half.weights)[1]
    assert "outside [-1, 1]" in str(err.value) and f"{__file__}:{line}" in str(err.value)


def test_bad_signals_name_the_file_and_line_too() -> None:
    class Twos(Half):
        weights = Strategy.weights  # whole positions: the signals are what trades

        def signals(self, panel):  # noqa: ANN001, ANN201
            return super().signals(panel) * 2

    with pytest.raises(ValueError) as err:
        run_backtest(Twos(), _panel([100.0] * 10), NO_COSTS, lookahead=False)
    line = inspect.getsourcelines(Twos.signals)[1]
    assert "is not -1, 0 or 1" in str(err.value) and f"{__file__}:{line}" in str(err.value)


def test_strategy_stop_is_honoured_like_the_global_barrier() -> None:
    """A strategy declaring Stops(stop_loss=0.02) is stopped where Barriers(stop_loss=0.02) would stop it."""
    opens = [100.0, 100.0, 100.0, 99.5, 99.0, 97.0, 96.0, 96.0]
    lows = [o * 0.999 for o in opens]
    lows[4] = 97.9  # inside bar 4 the low crosses 98 = 100 x (1 - 0.02)
    panel = _panel(opens, lows=lows)
    own = run_backtest(Half(weight=1.0, stop=0.02), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    glob = run_backtest(Half(weight=1.0), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False,
                        barriers=Barriers(stop_loss=0.02))
    stop = own.fills[own.fills["reason"] == "stop_loss"]
    assert list(stop["bar"]) == [4] and stop["price"].iloc[0] == 100.0 * (1.0 - 0.02)
    pd.testing.assert_frame_equal(own.fills, glob.fills)
    assert own.equity.equals(glob.equity)


def test_gap_through_the_stop_fills_at_the_open() -> None:
    opens = [100.0, 100.0, 100.0, 95.0, 95.0]  # bar 3 opens below the 98 stop
    panel = _panel(opens)
    res = run_backtest(Half(weight=1.0, stop=0.02), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    stop = res.fills[res.fills["reason"] == "stop_loss"]
    assert list(stop["bar"]) == [3] and stop["price"].iloc[0] == 95.0


def test_atr_scaled_stop_uses_the_atr_of_the_decision_bar() -> None:
    """k x ATR(3) / close at bar 1 (the entry's decision bar; it fills at bar 2) sets the trade's stop distance."""
    opens = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    highs = [101.0, 100.5, 100.5, 100.5, 100.5, 100.5]
    lows = [99.0, 99.5, 99.5, 99.5, 96.0, 99.5]
    panel = _panel(opens, highs, lows)
    res = run_backtest(Half(weight=1.0, atr_k=1.5), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    frac = 1.5 * (((101.0 - 99.0) + (100.5 - 99.5)) / 2 / 100.0)  # mean true range of bars 0-1 over the close
    stop = res.fills[res.fills["reason"] == "stop_loss"]
    assert list(stop["bar"]) == [4]
    assert stop["price"].iloc[0] == 100.0 * (1.0 - frac)


def test_walk_forward_evaluation_trades_the_weights_and_the_stops() -> None:
    """evaluate_params (walk-forward and optuna) runs what run_backtest runs: same returns for the same params."""
    rng = np.random.default_rng(4)
    opens = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 120))))
    panel = _panel(opens, [o * 1.01 for o in opens], [o * 0.985 for o in opens])
    window = Window(number=0, is_start=0, oos_start=60, oos_end=120)
    prepared = window_market(panel, window, NO_COSTS)
    is_r, oos_r = evaluate_params(Half, {"weight": 0.4, "stop": 0.012}, prepared, window, NO_COSTS,
                                  fixed_fraction(1.0), None)
    res = run_backtest(Half(weight=0.4, stop=0.012), panel, NO_COSTS, sizer=fixed_fraction(1.0), lookahead=False)
    assert (res.fills["reason"] == "stop_loss").any()
    assert np.array_equal(np.r_[is_r, oos_r], res.returns.to_numpy())
