"""Fractional weights and stops in the strategy contract: SafeStrategy (paper/live) and `strategy check`.

Bad weights (NaN, wrong shape, outside [-1, 1]) and a broken stops() become one `strategy.error` alert naming the
strategy's file and the line of the method, and the strategy trades flat; fractional weights pass through."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from engine.backtest.contract import check_strategy
from engine.store.ops import list_alerts
from engine.strategy.base import Strategy
from engine.strategy.stops import Stops
from engine.strategy.wrapper import SafeStrategy
from tests.features.synth import make_panel


@dataclass(frozen=True)
class _Cfg:
    mode: str = "fractional"


class Weighted(Strategy):
    """Weights chosen by its config: fractional (good) or one of the contract violations."""

    name = "weighted"
    Config = _Cfg
    default_timeframe = "1h"

    def signals(self, panel):  # noqa: ANN001, ANN201
        idx = next(iter(panel.values())).index
        return pd.DataFrame(1, index=idx, columns=list(panel), dtype="int8")

    def weights(self, panel):  # noqa: ANN001, ANN201
        w = self.signals(panel).astype("float64") * 0.25
        if self.config.mode == "nan":
            w.iloc[5, 0] = np.nan
        elif self.config.mode == "too_big":
            w.iloc[7, 1] = 1.5
        elif self.config.mode == "shape":
            w = w.iloc[:, :1]
        return w

    def stops(self):  # noqa: ANN201
        if self.config.mode == "bad_stops":
            return {"stop_loss": 0.02}  # not a Stops
        return Stops(stop_loss=2.0, take_profit=4.0, scale="vol", window=20)


WEIGHTS_LINE = f"{inspect.getsourcefile(Weighted.weights)}:{inspect.getsourcelines(Weighted.weights)[1]}"
STOPS_LINE = f"{inspect.getsourcefile(Weighted.stops)}:{inspect.getsourcelines(Weighted.stops)[1]}"


@pytest.fixture(scope="module")
def panel() -> dict[str, pd.DataFrame]:
    return make_panel(300, seed=3)


def test_fractional_weights_pass_through(store, panel) -> None:  # noqa: ANN001
    safe = SafeStrategy(Weighted(), store=store, instance_id="w-ok")
    w = safe.weights(panel)
    assert (w.to_numpy() == 0.25).all() and list_alerts(store) == []
    assert safe.stops() == Stops(stop_loss=2.0, take_profit=4.0, scale="vol", window=20)


@pytest.mark.parametrize("mode,needle", [("nan", "NaN at"), ("too_big", "outside [-1, 1]"),
                                         ("shape", "differ from the panel's symbols")])
def test_bad_weights_alert_with_file_and_line_and_trade_flat(store, panel, mode: str,  # noqa: ANN001
                                                              needle: str) -> None:
    safe = SafeStrategy(Weighted(mode=mode), store=store, instance_id=f"w-{mode}")
    w = safe.weights(panel)
    assert w.shape == (300, len(panel)) and (w == 0).all().all()
    (alert,) = list_alerts(store)
    assert alert.rule == "strategy.error" and needle in alert.message
    assert alert.message.endswith(f"at {WEIGHTS_LINE}") and alert.values["frame"] == WEIGHTS_LINE


def test_a_broken_stops_spec_alerts_and_means_no_stops(store) -> None:  # noqa: ANN001
    safe = SafeStrategy(Weighted(mode="bad_stops"), store=store, instance_id="w-stops")
    assert safe.stops() is None
    (alert,) = list_alerts(store)
    assert "stops()" in alert.message and alert.values["frame"] == STOPS_LINE


def test_stops_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="stops.stop_loss"):
        Stops(stop_loss=-0.01)
    with pytest.raises(ValueError, match="below 1"):
        Stops(stop_loss=2.0)  # a fixed fraction of 200 % is a typo for a vol multiple
    with pytest.raises(ValueError, match="stops.scale"):
        Stops(stop_loss=2.0, scale="bollinger")


def test_strategy_check_passes_fractional_weights_and_fails_out_of_range_naming_the_line() -> None:
    good = {c.name: c for c in check_strategy(Weighted, n_bars=600)}
    assert good["weights finite, in [-1, 1] (fractional allowed)"].ok
    assert "fractional on 100% of bars" in good["weights finite, in [-1, 1] (fractional allowed)"].detail
    assert good["stops: None or a Stops spec"].ok and "sl 2" not in good["stops: None or a Stops spec"].detail
    assert good["no lookahead in weights (truncated histories)"].ok

    class TooBig(Weighted):
        def weights(self, panel):  # noqa: ANN001, ANN201
            return self.signals(panel).astype("float64") * 1.5

    bad = {c.name: c for c in check_strategy(TooBig, n_bars=600)}
    verdict = bad["weights finite, in [-1, 1] (fractional allowed)"]
    line = inspect.getsourcelines(TooBig.weights)[1]
    assert not verdict.ok and "outside [-1, 1]" in verdict.detail and f"{__file__}:{line}" in verdict.detail
