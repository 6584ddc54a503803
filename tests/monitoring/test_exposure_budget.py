"""The account-level exposure budget reading: every instance's positions together, against portfolio equity."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from engine.execution.orders import Fill, OrderRequest, insert_order, record_fill
from engine.monitoring.risk_readings import exposure_budget
from engine.store.schema import equity_snapshots


def _hold(store, inst: str, symbol: str, qty: float, price: float) -> None:
    coid = f"qd-{inst}-{symbol}".replace("/", "")
    insert_order(store, OrderRequest(instance_id=inst, symbol=symbol, side="buy" if qty > 0 else "sell",
                                     qty=abs(qty), client_order_id=coid), 1)
    record_fill(store, Fill(f"{coid}:1", coid, inst, symbol, "buy" if qty > 0 else "sell", abs(qty), price, 0.0,
                            "taker", 1))


def test_exposure_budget_sums_all_instances_against_portfolio_equity(store):
    assert exposure_budget(store, {}) == (None, None, {})  # no equity yet: unknown, the rules skip
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots).values(ts=1, scope="portfolio", equity=10_000.0, cash=0.0,
                                                     gross_exposure=0.0, net_exposure=0.0, unrealized_pnl=0.0,
                                                     realized_pnl=0.0))
    _hold(store, "a", "BTC/USDT", 0.1, 40_000.0)  # 4,000 long
    _hold(store, "b", "BTC/USDT", 0.05, 40_000.0)  # 2,000 long: one symbol, two instances
    _hold(store, "b", "ETH/USDT", -2.0, 2_000.0)  # 4,000 short
    gross, net, per = exposure_budget(store, {"BTC/USDT": 50_000.0})  # ETH valued at its entry without a mark
    assert per == {"BTC/USDT": pytest.approx(0.75), "ETH/USDT": pytest.approx(0.4)}
    assert gross == pytest.approx(1.15) and net == pytest.approx(0.35)
