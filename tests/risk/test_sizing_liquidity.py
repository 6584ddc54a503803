"""Bet sizing (Kelly, probability, fixed), caps, lot rounding, recording; book liquidity and Amihud."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from engine.config import RiskConfig
from engine.risk.limits import Exposure, MarketRules, apply_caps, round_to_market
from engine.risk.liquidity import amihud, book_liquidity, depth_ratio
from engine.risk.sizing import kelly_fraction, probability_size, record_decision, size_position
from engine.store.schema import sizing_decisions

RISK = RiskConfig(kelly_fraction=0.5, max_trade_fraction=0.2, min_probability=0.0)
EXP = Exposure(instance_capital=10_000.0, portfolio_equity=100_000.0)


def test_kelly_formula_and_fractional_kelly() -> None:
    assert kelly_fraction(0.6, 2.0) == pytest.approx(0.6 - 0.4 / 2)
    assert kelly_fraction(1 / 3, 2.0) == pytest.approx(0.0)
    d = size_position("BTC/USDT", 1, 100.0, EXP, RISK, meta_prob=0.6, payoff_ratio=2.0)
    assert d.kelly_fraction == pytest.approx(0.4) and d.raw_size == pytest.approx(0.2)
    assert d.final_size == pytest.approx(0.2 * 10_000 / 100.0) and d.cap_applied == ""
    short = size_position("BTC/USDT", -1, 100.0, EXP, RISK, meta_prob=0.6, payoff_ratio=2.0)
    assert short.signed_qty == pytest.approx(-d.final_size)
    neg = size_position("BTC/USDT", 1, 100.0, EXP, RISK, meta_prob=0.3, payoff_ratio=2.0)
    assert neg.final_size == 0.0 and neg.cap_applied == "negative_edge" and neg.kelly_fraction < 0


def test_probability_and_fixed_methods() -> None:
    assert probability_size(0.5) == pytest.approx(0.0)
    assert probability_size(0.7) > probability_size(0.6) > 0 and probability_size(0.3) < 0
    d = size_position("X", 1, 10.0, EXP, RISK, meta_prob=0.7, payoff_ratio=2.0, method="probability")
    assert d.raw_size == pytest.approx(probability_size(0.7) * 0.2)
    f = size_position("X", 1, 10.0, EXP, RISK, method="kelly")  # no model: primary-only fixed size
    assert f.method == "fixed" and f.raw_size == 0.2
    gated = size_position("X", 1, 10.0, EXP, dataclasses.replace(RISK, min_probability=0.55), meta_prob=0.54,
                          payoff_ratio=2.0)
    assert gated.final_size == 0 and gated.cap_applied == "min_probability"


def test_caps_name_the_binding_limit() -> None:
    risk = RiskConfig(kelly_fraction=1.0, max_trade_fraction=0.5, max_strategy_fraction=0.5,
                      max_symbol_fraction=0.3, max_portfolio_leverage=1.5, min_probability=0.0)
    exp = Exposure(10_000.0, 100_000.0, strategy_gross=4_000.0)
    assert apply_caps(3_000.0, exp, risk) == (1_000.0, "per_strategy")
    exp = Exposure(10_000.0, 20_000.0, symbol_gross=5_500.0)
    assert apply_caps(3_000.0, exp, risk) == pytest.approx((500.0, "per_symbol"))
    exp = Exposure(10_000.0, 20_000.0, portfolio_gross=29_900.0)
    assert apply_caps(3_000.0, exp, risk) == pytest.approx((100.0, "portfolio"))
    d = size_position("X", 1, 100.0, Exposure(10_000.0, 100_000.0), risk, meta_prob=0.9, payoff_ratio=2.0)
    assert d.cap_applied == "per_trade" and d.final_size == pytest.approx(50.0)
    deep = size_position("X", 1, 100.0, Exposure(10_000.0, 100_000.0), risk, meta_prob=0.9, payoff_ratio=2.0,
                         depth=20_000.0)
    assert deep.cap_applied == "depth" and deep.notional == pytest.approx(2_000.0)
    toxic = size_position("X", 1, 100.0, EXP, RISK, meta_prob=0.6, payoff_ratio=2.0, vpin_cdf=0.9)
    assert toxic.cap_applied == "vpin" and toxic.final_size == pytest.approx(10.0)


def test_lot_and_min_notional_rounding() -> None:
    assert round_to_market(1.23456, 100.0, MarketRules(lot_size=0.01)) == (1.23, "")
    assert round_to_market(0.3, 3.0, MarketRules(lot_size=0.1)) == (0.3, "")  # no float floor error
    assert round_to_market(0.004, 100.0, MarketRules(lot_size=0.001, min_notional=5.0)) == (0.0, "min_notional")
    assert round_to_market(0.004, 100.0, MarketRules(min_qty=0.01)) == (0.0, "min_qty")
    d = size_position("X", 1, 30_000.0, EXP, RISK, meta_prob=0.6, payoff_ratio=2.0,
                      rules=MarketRules(lot_size=0.001, min_notional=10.0))
    assert d.final_size == pytest.approx(0.066) and d.cap_applied == ""
    with pytest.raises(ValueError, match="price"):
        size_position("X", 1, 0.0, EXP, RISK)
    with pytest.raises(ValueError, match="meta_prob"):
        size_position("X", 1, 1.0, EXP, RISK, meta_prob=1.5, payoff_ratio=2.0)
    with pytest.raises(ValueError, match="instance_capital"):
        Exposure(0.0, 1.0)


def test_decision_is_recorded_with_inputs(store) -> None:  # noqa: ANN001
    d = size_position("ETH/USDT", -1, 2000.0, EXP, RISK, meta_prob=0.62, payoff_ratio=2.0, vpin_cdf=0.4,
                      spread_bps=1.5, depth=1e6, ts=1234)
    rid = record_decision(store, "quantum_momentum", d)
    with store.connect() as conn:
        row = conn.execute(select(sizing_decisions).where(sizing_decisions.c.id == rid)).mappings().one()
    assert row["instance_id"] == "quantum_momentum" and row["side"] == -1 and row["ts"] == 1234
    assert row["final_size"] == pytest.approx(d.final_size) and row["kelly_fraction"] == pytest.approx(0.43)
    assert row["vpin_cdf"] == 0.4 and row["spread_bps"] == 1.5 and row["depth"] == 1e6
    inputs = json.loads(row["inputs"])
    assert inputs["method"] == "kelly" and inputs["exposure"]["instance_capital"] == 10_000.0


def test_book_liquidity_and_amihud() -> None:
    book = {"bids": [[99.9, 10], [99.8, 5], [98.0, 100]], "asks": [[100.1, 4], [100.3, 2], [103.0, 50]]}
    spread, dbid, dask = book_liquidity(book, depth_bps=50)
    assert spread == pytest.approx(0.2 / 100.0 * 1e4)
    assert dbid == pytest.approx(99.9 * 10 + 99.8 * 5) and dask == pytest.approx(100.1 * 4 + 100.3 * 2)
    with pytest.raises(ValueError, match="crossed"):
        book_liquidity({"bids": [[101, 1]], "asks": [[100, 1]]}, 10)
    with pytest.raises(ValueError, match="asks"):
        book_liquidity({"bids": [[101, 1]]}, 10)
    idx = pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))), index=idx)
    thick = amihud(pd.DataFrame({"close": close, "volume": 1000.0}), 24)
    thin = amihud(pd.DataFrame({"close": close, "volume": 10.0}), 24)
    assert (thin.dropna() / thick.dropna()).round(6).eq(100.0).all()
    assert depth_ratio([100, 100, 100, 20]) == pytest.approx(0.2)
