"""A strategy's fractional weight scales the live/paper size: risk.sizing multiplies the Kelly / fixed fraction by
|weight|, and the trader passes the weight through (paper and live use the same Trader)."""

from __future__ import annotations

import pytest

from engine.config import RiskConfig
from engine.execution.orders import load_positions
from engine.risk.limits import Exposure
from engine.risk.sizing import size_position
from tests.trading.test_trader_unit import _next_bar, desk  # noqa: F401 - the shared trader fixture

RISK = RiskConfig(kelly_fraction=0.5, max_trade_fraction=0.2, min_probability=0.0)
EXP = Exposure(instance_capital=10_000.0, portfolio_equity=100_000.0)


@pytest.mark.parametrize("kw", [{}, {"meta_prob": 0.6, "payoff_ratio": 2.0}, {"meta_prob": 0.7, "method": "probability"}])
def test_weight_scales_every_sizing_method(kw: dict) -> None:
    if kw.get("method") == "probability":
        kw = dict(kw, payoff_ratio=2.0)
    full = size_position("X", 1, 10.0, EXP, RISK, **kw)
    half = size_position("X", 1, 10.0, EXP, RISK, weight=0.5, **kw)
    assert full.final_size > 0 and half.final_size == pytest.approx(full.final_size / 2, rel=1e-6)
    assert half.inputs["weight"] == 0.5 and half.raw_size == pytest.approx(full.raw_size / 2)


def test_weight_outside_zero_one_is_refused() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="weight"):
            size_position("X", 1, 10.0, EXP, RISK, weight=bad)


def test_trader_sizes_a_half_weight_at_half_the_position(desk) -> None:  # noqa: ANN001, F811
    trader, source, broker, strat, store, inst = desk
    strat.w["AAA/USDT"], strat.w["BBB/USDT"] = 1.0, 0.5
    _next_bar(source, store)
    res = trader.tick(inst, 100_000.0)
    assert res.targets["BBB/USDT"] == pytest.approx(res.targets["AAA/USDT"] / 2, rel=1e-3)
    held = {p["symbol"]: p["qty"] for p in load_positions(store, "t1")}
    assert held["BBB/USDT"] == pytest.approx(held["AAA/USDT"] / 2, rel=1e-3)
    with store.connect() as conn:
        inputs = conn.exec_driver_sql("SELECT inputs FROM sizing_decisions WHERE symbol='BBB/USDT'").scalar()
    assert '"weight": 0.5' in inputs and '"strategy_weight": 0.5' in inputs
