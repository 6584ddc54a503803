"""Quantum Momentum and Macro Trend: output contract, sensible behaviour, gates, speed."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from engine.features.panel import resample_panel
from strategies.macro_trend import MacroTrend
from strategies.quantum_momentum import QuantumMomentum
from engine.strategy.registry import load_strategy
from tests.features.synth import make_bars, make_panel

NAMES = ["quantum_momentum", "macro_trend"]


@pytest.fixture(scope="module")
def year_1h() -> dict[str, pd.DataFrame]:
    return make_panel(24 * 365, seed=21)


def _trend_panel(n: int = 1500, drift: float = 0.002, freq: str = "1h") -> dict[str, pd.DataFrame]:
    """Up for the first half, down for the second, with mild noise."""
    rng = np.random.default_rng(5)
    r = np.r_[np.full(n // 2, drift), np.full(n - n // 2, -drift)] + rng.normal(0, 0.004, n)
    close = 100 * np.exp(np.cumsum(r))
    idx = pd.date_range("2024", periods=n, freq=freq, tz="UTC", name="ts")
    frame = pd.DataFrame({"open": np.r_[100, close[:-1]], "close": close, "volume": 10.0}, index=idx)
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.002
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.998
    return {"BTC/USDT": frame[["open", "high", "low", "close", "volume"]]}


def _trades(sig: pd.DataFrame) -> int:
    return int((sig.diff().fillna(sig).abs() > 0).sum().sum())


@pytest.mark.parametrize("name", NAMES)
def test_signal_contract_and_trade_count(name: str, year_1h, report) -> None:
    strat = load_strategy(name)
    panel = year_1h if name == "quantum_momentum" else resample_panel(year_1h, "4h")
    sig = strat.signals(panel)
    assert list(sig.columns) == list(panel) and sig.index.equals(panel["BTC/USDT"].index)
    assert sig.index.name == "ts" and (sig.dtypes == "int8").all()
    assert set(np.unique(sig.to_numpy())) <= {-1, 0, 1}
    assert (sig.iloc[: strat.warmup_bars // 2] == 0).all().all()  # nothing before the warm-up has data
    n_trades = _trades(sig)
    exposure = float((sig != 0).to_numpy().mean())
    report(f"{name} on a simulated year", {"bars": len(sig), "position_changes": n_trades,
                                           "time_in_market": exposure, "longs": int((sig > 0).sum().sum()),
                                           "shorts": int((sig < 0).sum().sum())})
    assert 30 <= n_trades <= len(sig) * len(panel) * 0.1  # meaningful, but not churning every bar
    assert 0.1 < exposure < 0.95
    feats = strat.features(panel)
    assert set(feats) == set(panel)
    assert all(f.index.equals(panel[s].index) for s, f in feats.items())
    assert feats["BTC/USDT"].shape[1] > 20


@pytest.mark.parametrize("name", NAMES)
def test_follows_a_planted_trend(name: str) -> None:
    params = {"slow": 168, "regime_window": 240, "vol_window": 48} if name == "quantum_momentum" else {}
    strat = load_strategy(name, params)
    sig = strat.signals(_trend_panel())["BTC/USDT"]
    up, down = sig.iloc[400:700], sig.iloc[1150:1500]
    assert (up == 1).mean() > 0.6 and (up == -1).mean() == 0
    assert (down == -1).mean() > 0.6 and (down == 1).mean() == 0


def test_allow_short_false_never_shorts(year_1h) -> None:
    assert (QuantumMomentum(allow_short=False).signals(year_1h) >= 0).all().all()
    assert (MacroTrend(allow_short=False).signals(resample_panel(year_1h, "4h")) >= 0).all().all()


def test_macro_trend_gates_block_longs_in_risk_off_and_crowded_funding() -> None:
    panel = _trend_panel(n=1500, freq="4h")
    frame = panel["BTC/USDT"]
    base = MacroTrend().signals(panel)["BTC/USDT"]
    assert (base.iloc[300:700] == 1).mean() > 0.6
    # macro risk collapses during the uptrend (daily prints, z-score strongly negative)
    risk = pd.Series(0.0, index=frame.index)
    risk.iloc[:500] = np.random.default_rng(0).normal(0, 0.1, 500)
    risk.iloc[500:] = -5.0 - np.arange(1000) * 0.01
    gated = MacroTrend(risk_threshold=0.5).signals({"BTC/USDT": frame.assign(risk_index=risk)})["BTC/USDT"]
    assert (gated.iloc[520:560] == 1).sum() == 0 and (base.iloc[520:560] == 1).sum() > 30
    # crowded longs: funding spikes far above its history
    funding = pd.Series(1e-4, index=frame.index) + np.random.default_rng(1).normal(0, 1e-5, len(frame))
    funding.iloc[500:] = 5e-3
    crowded = MacroTrend(funding_z_max=2.0).signals({"BTC/USDT": frame.assign(funding_rate=funding)})["BTC/USDT"]
    assert (crowded.iloc[500:520] == 1).sum() == 0 and (base.iloc[500:520] == 1).sum() > 10


def test_quantum_momentum_regime_filter_and_vol_targeting() -> None:
    panel = _trend_panel(n=1500)
    strat = QuantumMomentum(slow=168, regime_window=240, vol_window=48)
    sig = strat.signals(panel)["BTC/USDT"]
    # a volatility spike in the middle of the uptrend: the regime filter goes flat
    frame = panel["BTC/USDT"].copy()
    rng = np.random.default_rng(9)
    shock = np.ones(len(frame))
    shock[600:660] = np.exp(np.cumsum(rng.normal(0, 0.05, 60)))
    shock[660:] = shock[659]
    spiked = frame.mul(shock, axis=0)
    spiked["volume"] = frame["volume"]
    s2 = strat.signals({"BTC/USDT": spiked})["BTC/USDT"]
    assert (sig.iloc[610:660] == 1).mean() > 0.8 and (s2.iloc[620:660] != 0).mean() < 0.2
    w = strat.weights(panel)["BTC/USDT"]
    assert np.sign(w).eq(sig).all()
    assert w.abs().max() <= strat.config.max_leverage + 1e-12
    ann = np.log(frame["close"]).diff().iloc[400:700].std() * np.sqrt(8760)
    assert w.iloc[500] == pytest.approx(min(strat.config.max_leverage, strat.config.target_vol / ann), rel=0.35)


def test_cross_sectional_leg_prefers_the_leader() -> None:
    """With no time-series weight, the strongest of three assets is long and the weakest short."""
    n = 1200
    idx = pd.date_range("2024", periods=n, freq="1h", tz="UTC", name="ts")
    panel = {}
    for k, drift in enumerate((0.001, 0.0, -0.001)):
        base = make_bars(n, seed=40 + k, drift_regimes=False)
        scale = np.exp(np.arange(n) * drift)
        frame = base.mul(scale, axis=0)
        frame["volume"] = base["volume"]
        frame.index = idx
        panel[f"A{k}/USDT"] = frame
    sig = QuantumMomentum(ts_weight=0.0, entry=0.5, exit=0.1, min_efficiency=0.0, max_vol_ratio=4.0).signals(panel)
    late = sig.iloc[900:]
    assert (late["A0/USDT"] == 1).mean() > 0.7 and (late["A2/USDT"] == -1).mean() > 0.7


def test_runs_on_1m_bars_and_single_symbol_without_feeds() -> None:
    m1 = {"BTC/USDT": make_bars(3000, seed=3, freq="1min")}
    for name in NAMES:
        sig = load_strategy(name).signals(m1)
        assert sig.shape == (3000, 1) and (sig.dtypes == "int8").all()
        assert sig.abs().to_numpy().sum() > 0


def test_bad_panels_name_the_problem() -> None:
    strat = QuantumMomentum()
    with pytest.raises(ValueError, match="non-empty"):
        strat.signals({})
    frame = make_bars(50)
    with pytest.raises(ValueError, match="missing columns"):
        strat.signals({"BTC/USDT": frame.drop(columns=["close"])})
    with pytest.raises(ValueError, match="sorted"):
        strat.signals({"BTC/USDT": frame.iloc[::-1]})


@pytest.mark.parametrize("column,param", [("fear_greed", "sentiment_max"), ("exchange_netflow", "netflow_z_max")])
def test_macro_trend_euphoria_and_inflow_gates(column: str, param: str) -> None:
    panel = _trend_panel(n=1500, freq="4h")
    frame = panel["BTC/USDT"]
    base = MacroTrend().signals(panel)["BTC/USDT"]
    daily = np.random.default_rng(3).normal(0, 2, len(frame) // 6 + 1)
    calm = pd.Series(50.0 + np.repeat(daily, 6)[: len(frame)], index=frame.index)  # a daily feed on 4h bars
    calm.iloc[500:] = 99.0 if column == "fear_greed" else 5e3  # euphoria / heavy exchange inflows
    gated = MacroTrend(**{param: 3.0}).signals({"BTC/USDT": frame.assign(**{column: calm})})["BTC/USDT"]
    # a z-score gate reacts to the shift: closed for the first days, until the new level becomes the norm
    assert (base.iloc[500:509] == 1).sum() > 6 and (gated.iloc[500:509] == 1).sum() == 0
    assert (gated.iloc[300:480] == base.iloc[300:480]).mean() > 0.97  # before the spike the gate is open
