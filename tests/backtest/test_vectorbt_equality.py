"""Optional: on an SMA crossover our engine equals vectorbt (final equity within 1e-6 relative, same trades).

Skips cleanly when vectorbt is not importable (it is in the `bench` extra, not a runtime dependency).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.engine import run_backtest
from tests.support.strategies.sma_cross import SmaCross
from engine.backtest.sizing import fixed_fraction
from engine.config import BacktestConfig

vbt = pytest.importorskip("vectorbt", reason="vectorbt not installed (pip install -e '.[bench]')")


@pytest.mark.parametrize("fee", [0.0, 0.0005])
def test_sma_cross_equals_vectorbt(make_panel, report, fee: float) -> None:  # noqa: ANN001
    """Same signals, next-open fills, fees only: identical trades and final equity to 1e-6."""
    from tests.support.vectorbt_peer import vectorbt_from_signals, vectorbt_trades

    panel = make_panel(20_000, freq="1min", seed=4)
    cfg = BacktestConfig(fee_taker=fee, fee_maker=fee, half_spread_bps=0.0, impact_coef=0.0)
    res = run_backtest(SmaCross(fast=20, slow=100), panel, cfg, sizer=fixed_fraction(1.0), lookahead=False)
    frame = panel["BTC/USDT"]
    pf = vectorbt_from_signals(frame, res.signals["BTC/USDT"], fee, cfg.initial_capital)
    theirs = float(pf.final_value())
    ours = float(res.equity.iloc[-1])
    report(f"vectorbt equality (fee {fee})", {"ours": ours, "vectorbt": theirs, "rel_diff": abs(ours / theirs - 1),
                                              "trades": len(res.trades)})
    assert abs(ours / theirs - 1.0) < 1e-6
    vt = vectorbt_trades(pf, frame.index)
    assert len(vt) == len(res.trades) > 50
    assert list(vt["entry_ts"]) == list(res.trades["entry_ts"])
    assert list(vt["exit_ts"]) == list(res.trades["exit_ts"])
    np.testing.assert_allclose(vt["entry_price"], res.trades["entry_price"], rtol=1e-12)
    np.testing.assert_allclose(vt["qty"], res.trades["qty"], rtol=1e-9)
    np.testing.assert_allclose(pf.value().to_numpy(), res.equity.to_numpy(), rtol=1e-9)
