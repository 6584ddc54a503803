"""SafeStrategy turns user-code exceptions into strategy.error alert rows in a real state.db and a flat signal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from engine.store.ops import list_alerts
from engine.strategy.base import Strategy
from strategies.quantum_momentum import QuantumMomentum
from engine.strategy.wrapper import SafeStrategy, check_signals, flat_signals
from tests.features.synth import make_panel


@dataclass(frozen=True)
class _Cfg:
    mode: str = "raise"


class Fragile(Strategy):
    """A user strategy with bugs selectable by its config."""

    name = "fragile"
    Config = _Cfg

    def features(self, panel):
        raise KeyError("no_such_column")

    def signals(self, panel):
        if self.config.mode == "raise":
            return self._helper(panel)
        frame = pd.DataFrame(0, index=panel["BTC/USDT"].index, columns=list(panel))
        if self.config.mode == "bad_values":
            return frame + 2
        return frame.iloc[:, :1]  # wrong columns

    def _helper(self, panel):
        return 1 / 0


@pytest.fixture(scope="module")
def panel() -> dict[str, pd.DataFrame]:
    return make_panel(300, seed=2)


def test_exception_becomes_alert_and_flat_signal(store, panel) -> None:
    safe = SafeStrategy(Fragile(), store=store, instance_id="fragile-1")
    sig = safe.signals(panel)
    assert sig.shape == (300, 3) and (sig == 0).all().all() and (sig.dtypes == "int8").all()
    alerts = list_alerts(store)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.rule == "strategy.error" and alert.source == "strategy:fragile-1" and alert.severity == "warning"
    assert "ZeroDivisionError" in alert.message and "test_wrapper.py" in alert.message
    assert alert.values["frame"].endswith("in _helper") and alert.values["instance_id"] == "fragile-1"
    assert "1 / 0" in alert.values["traceback"]
    assert safe.error_count == 1


def test_repeats_are_rate_limited_and_counted(store, panel) -> None:
    safe = SafeStrategy(Fragile(), store=store, instance_id="fragile-2", alert_interval_s=3600)
    for _ in range(5):
        safe.signals(panel)
    assert len(list_alerts(store)) == 1 and safe.error_count == 5
    fast = SafeStrategy(Fragile(), store=store, instance_id="fragile-3", alert_interval_s=0.0)
    fast.signals(panel)
    fast.signals(panel)
    latest = list_alerts(store)[0]  # the store's dedup window (issue 14) merges the identical second alert: a count
    assert len(list_alerts(store)) == 2 and latest.count == 2 and latest.values["error_count"] == 2


@pytest.mark.parametrize("mode,needle", [("bad_values", "values must be in"), ("bad_columns", "columns")])
def test_contract_violations_become_alerts(store, panel, mode: str, needle: str) -> None:
    safe = SafeStrategy(Fragile(mode=mode), store=store)
    assert (safe.signals(panel) == 0).all().all()
    assert needle in list_alerts(store)[0].message


def test_features_and_weights_failures_are_caught(store, panel) -> None:
    safe = SafeStrategy(Fragile(mode="bad_values"), store=store, instance_id="f")
    feats = safe.features(panel)
    assert set(feats) == set(panel) and all(f.shape[1] == 0 for f in feats.values())
    w = safe.weights(panel)
    assert (w == 0.0).all().all()
    rules = [a.rule for a in list_alerts(store)]
    assert rules == ["strategy.error"] * 2


def test_healthy_strategy_passes_through_unchanged(store, panel) -> None:
    strat = QuantumMomentum(fast=6, mid=24, slow=48, vol_window=24, regime_window=96)
    safe = SafeStrategy(strat, store=store)
    pd.testing.assert_frame_equal(safe.signals(panel), strat.signals(panel))
    assert safe.name == "quantum_momentum" and safe.default_timeframe == "1h"
    assert safe.param_space() == strat.param_space() and safe.warmup_bars == strat.warmup_bars
    assert list_alerts(store) == []


def test_without_store_it_logs(panel, caplog) -> None:
    safe = SafeStrategy(Fragile())
    with caplog.at_level("WARNING", logger="quantdesk.strategy"):
        assert (safe.signals(panel) == 0).all().all()
    assert "ZeroDivisionError" in caplog.text


def test_broken_panel_still_flat(store) -> None:
    safe = SafeStrategy(QuantumMomentum(), store=store)
    out = safe.signals({"BTC/USDT": pd.DataFrame({"close": [1.0]})})
    assert out.shape[1] == 1 and len(out) <= 1
    assert "missing columns" in list_alerts(store)[0].message


def test_check_signals_and_flat_helpers(panel) -> None:
    flat = flat_signals(panel)
    assert check_signals(flat, panel).equals(flat)
    with pytest.raises(ValueError, match="DataFrame"):
        check_signals(np.zeros(3), panel)
    with pytest.raises(TypeError, match="Strategy"):
        SafeStrategy(object())


def test_broken_user_module_becomes_an_alert(store, tmp_path) -> None:
    from engine.strategy.wrapper import report_discovery_errors

    (tmp_path / "typo.py").write_text("import numpy as np\nnp.nonexistent_function()\n")
    assert report_discovery_errors(store, [tmp_path]) == 1
    alert = list_alerts(store)[0]
    assert alert.rule == "strategy.error" and "typo.py" in alert.message and "nonexistent_function" in alert.message


def test_duplicate_bar_times_rejected(panel) -> None:
    frame = panel["BTC/USDT"]
    doubled = pd.concat([frame.iloc[:5], frame.iloc[4:10]])
    with pytest.raises(ValueError, match="duplicate"):
        QuantumMomentum().signals({"BTC/USDT": doubled})
