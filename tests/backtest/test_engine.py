"""run_backtest / simulate_targets: next-bar fills, costs, funding, barriers, sizers, multi-symbol, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.backtest.engine import Barriers, run_backtest, simulate_targets
from tests.support.strategies.sma_cross import SmaCross
from engine.backtest.sizing import fixed_fraction, from_frame, vol_target
from engine.config import BacktestConfig, load_settings

NO_COSTS = BacktestConfig(fee_taker=0.0, fee_maker=0.0, half_spread_bps=0.0, impact_coef=0.0)


class FixedSignals:
    """A strategy whose signals are a given frame (point-in-time by construction)."""

    name = "fixed_signals"
    warmup_bars = 0

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def signals(self, panel):  # noqa: ANN001, ANN201
        index = next(iter(panel.values())).index
        return self.frame.loc[: index[-1]]


def _bars(opens: list[float], symbol: str = "BTC/USDT", start: str = "2024-01-01") -> dict[str, pd.DataFrame]:
    o = np.array(opens, dtype=float)
    idx = pd.date_range(start, periods=len(o), freq="1h", tz="UTC", name="ts")
    frame = pd.DataFrame({"open": o, "high": o * 1.01, "low": o * 0.99, "close": o + 0.5, "volume": 1000.0},
                         index=idx)
    return {symbol: frame}


def test_signal_fills_at_next_open_never_on_its_own_bar() -> None:
    """A bar-1 long signal fills at bar 2's open; the exit signal at bar 3 fills at bar 4's open."""
    panel = _bars([10, 11, 12, 13, 14, 15])
    idx = panel["BTC/USDT"].index
    sig = pd.DataFrame({"BTC/USDT": [0, 1, 1, 0, 0, 0]}, index=idx)
    cfg = BacktestConfig(fee_taker=0.001, fee_maker=0.0, half_spread_bps=0.0, impact_coef=0.0)
    res = run_backtest(FixedSignals(sig), panel, cfg, sizer=fixed_fraction(1.0))
    assert list(res.fills["ts"]) == [idx[2], idx[4]]
    assert list(res.fills["price"]) == [12.0, 14.0]
    qty = 100_000.0 / (12.0 * 1.001)
    assert res.fills["qty"].iloc[0] == pytest.approx(qty, rel=1e-12)
    expected = 100_000.0 - qty * 12 * 1.001 + qty * 14 * (1 - 0.001)
    assert res.equity.iloc[-1] == pytest.approx(expected, rel=1e-12)
    trade = res.trades.iloc[0]
    assert (trade.entry_ts, trade.exit_ts, trade.entry_price, trade.exit_price) == (idx[2], idx[4], 12.0, 14.0)
    assert trade.pnl == pytest.approx(expected - 100_000.0, rel=1e-9)
    assert res.equity.iloc[1] == 100_000.0  # nothing happens on the signal's own bar


def test_spread_and_impact_make_fills_worse_and_are_reported() -> None:
    """Half spread and square-root impact move buy fills up and sell fills down; slippage is recorded."""
    panel = {"BTC/USDT": pd.concat([_bars([100.0] * 200)["BTC/USDT"]])}
    rng = np.random.default_rng(1)
    panel["BTC/USDT"]["close"] = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    panel["BTC/USDT"]["open"] = panel["BTC/USDT"]["close"].shift(1).fillna(100.0)
    sig = pd.DataFrame({"BTC/USDT": np.r_[np.zeros(150), np.ones(20), np.zeros(30)]}, index=panel["BTC/USDT"].index)
    cheap = run_backtest(FixedSignals(sig), panel, NO_COSTS, lookahead=False)
    costly = run_backtest(FixedSignals(sig), panel, BacktestConfig(fee_taker=0.0, half_spread_bps=5.0,
                                                                   impact_coef=0.5), lookahead=False)
    buy, sell = costly.fills.iloc[0], costly.fills.iloc[1]
    assert buy.price > buy.ref_price and sell.price < sell.ref_price
    assert costly.metrics["slippage"] > 0 and cheap.metrics["slippage"] == 0
    assert costly.equity.iloc[-1] < cheap.equity.iloc[-1]


def test_funding_is_paid_on_perpetuals_at_8h_settlements_only() -> None:
    """A long perp pays qty * open * rate at 00/08/16 UTC bars it holds into; the same spot symbol pays nothing."""
    n = 30
    perp = _bars([100.0] * n, "BTC/USDT:USDT")
    perp["BTC/USDT:USDT"]["funding_rate"] = 0.001
    spot = {"BTC/USDT": perp["BTC/USDT:USDT"].copy()}
    idx = perp["BTC/USDT:USDT"].index
    sig = pd.DataFrame(1, index=idx, columns=["BTC/USDT:USDT"])
    res = run_backtest(FixedSignals(sig), perp, NO_COSTS, lookahead=False)
    qty = res.positions.iloc[-1, 0]
    held_into = [t for i, t in enumerate(idx) if i >= 2 and t.hour % 8 == 0]  # position exists from bar 1's open
    assert res.metrics["funding"] == pytest.approx(qty * 100.0 * 0.001 * len(held_into), rel=1e-12)
    res_spot = run_backtest(FixedSignals(sig.rename(columns={"BTC/USDT:USDT": "BTC/USDT"})), spot, NO_COSTS,
                            lookahead=False)
    assert res_spot.metrics["funding"] == 0.0
    assert res_spot.equity.iloc[-1] > res.equity.iloc[-1]


def test_stop_loss_take_profit_and_time_barriers() -> None:
    """Stops exit at the stop price (taker), take-profits at the limit (maker fee), time exits at the open."""
    opens = [100, 100, 100, 100, 100, 100, 100, 100]
    panel = _bars(opens)
    frame = panel["BTC/USDT"]
    frame.loc[frame.index[3], "low"] = 90.0  # stop at 95 is hit in bar 3
    sig = pd.DataFrame({"BTC/USDT": [1, 1, 1, 1, 1, 1, 1, 1]}, index=frame.index)
    cfg = BacktestConfig(fee_taker=0.001, fee_maker=0.0002, half_spread_bps=0.0, impact_coef=0.0)
    res = run_backtest(FixedSignals(sig), panel, cfg, barriers=Barriers(stop_loss=0.05), lookahead=False)
    stop = res.fills.iloc[1]
    assert (stop.reason, stop.price, stop.bar) == ("stop_loss", 95.0, 3)
    assert len(res.fills) == 2  # the unchanged target does not re-enter after the stop
    frame.loc[frame.index[3], "low"] = 99.0
    frame.loc[frame.index[4], "high"] = 120.0
    res = run_backtest(FixedSignals(sig), panel, cfg, barriers=Barriers(take_profit=0.1), lookahead=False)
    take = res.fills.iloc[1]
    assert take.reason == "take_profit" and take.price == pytest.approx(110.0, rel=1e-12)
    assert take.fee == pytest.approx(abs(take.qty) * 110.0 * 0.0002)
    res = run_backtest(FixedSignals(sig), panel, cfg, barriers=Barriers(max_bars=3), lookahead=False)
    assert res.fills.iloc[1].reason == "time" and res.fills.iloc[1].bar == 4
    assert res.trades.iloc[0].exit_reason == "time"


def test_several_symbols_share_one_equity() -> None:
    """Two symbols with half the equity each; the portfolio equity is cash plus both marked positions."""
    panel = {**_bars([10, 10, 11, 12, 13, 14], "BTC/USDT"), **_bars([20, 20, 19, 18, 17, 16], "ETH/USDT")}
    idx = panel["BTC/USDT"].index
    sig = pd.DataFrame({"BTC/USDT": [1] * 6, "ETH/USDT": [1] * 6}, index=idx)
    res = run_backtest(FixedSignals(sig), panel, NO_COSTS, lookahead=False)
    q = res.positions.iloc[-1]
    assert q["BTC/USDT"] == pytest.approx(50_000 / 10) and q["ETH/USDT"] == pytest.approx(50_000 / 20)
    assert res.equity.iloc[-1] == pytest.approx(res.cash.iloc[-1] + q["BTC/USDT"] * 14.5 + q["ETH/USDT"] * 16.5)


def test_simulate_targets_is_the_path_run_backtest_takes(make_panel) -> None:  # noqa: ANN001
    """The twin path (given targets) reproduces run_backtest exactly for the same targets."""
    panel = make_panel(1500, ("BTC/USDT", "ETH/USDT"))
    strat = SmaCross(fast=8, slow=40, long_only=False)
    settings = load_settings(environ={})
    res = run_backtest(strat, panel, settings, sizer=vol_target(0.4), lookahead=False)
    twin = simulate_targets(res.targets, panel, settings)
    assert np.array_equal(twin.equity.to_numpy(), res.equity.to_numpy())
    assert len(twin.fills) == len(res.fills) > 10
    again = run_backtest(strat, panel, settings, sizer=from_frame(res.targets), lookahead=False)
    assert np.array_equal(again.equity.to_numpy(), res.equity.to_numpy())


def test_vol_target_holds_size_for_a_signal_run(make_panel) -> None:  # noqa: ANN001
    """Vol-target sizes change only where the signal changes, so a held signal does not churn."""
    panel = make_panel(1000)
    sig = SmaCross(fast=5, slow=30).signals(panel).astype(float)
    tg = vol_target(0.3)(sig, panel)
    changes_t = (tg.diff().abs().sum(axis=1) > 0).sum()
    changes_s = (sig.diff().abs().sum(axis=1) > 0).sum()
    assert changes_t <= changes_s
    assert (tg.abs().to_numpy() <= 1.0).all()


def test_bad_input_names_what_is_wrong(make_panel) -> None:  # noqa: ANN001
    """Bad signals, targets, panels and configs raise ValueError naming the culprit."""
    panel = make_panel(100)
    idx = panel["BTC/USDT"].index
    with pytest.raises(ValueError, match="fixed_signals: signal 2.0"):
        run_backtest(FixedSignals(pd.DataFrame({"BTC/USDT": 2}, index=idx)), panel, NO_COSTS)
    with pytest.raises(ValueError, match="targets: columns \\['XRP/USDT'\\]"):
        simulate_targets(pd.DataFrame({"XRP/USDT": 1.0}, index=idx), panel, NO_COSTS)
    with pytest.raises(ValueError, match="missing columns"):
        simulate_targets(pd.DataFrame({"BTC/USDT": 1.0}, index=idx), {"BTC/USDT": panel["BTC/USDT"][["close"]]},
                         NO_COSTS)
    with pytest.raises(ValueError, match="backtest.fill_model"):
        simulate_targets(pd.DataFrame({"BTC/USDT": 1.0}, index=idx), panel, BacktestConfig(fill_model="best"))
    with pytest.raises(ValueError, match="backtest.fee_taker"):
        simulate_targets(pd.DataFrame({"BTC/USDT": 1.0}, index=idx), panel, BacktestConfig(fee_taker=-1.0))
    with pytest.raises(ValueError, match="barriers.stop_loss"):
        Barriers(stop_loss=-0.1)
