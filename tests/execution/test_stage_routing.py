"""Brokers by stage: a paper instance never reaches the exchange, live-small trades a fraction, config never seeds
past paper (issue 13, money-safety defects 1a and 1b)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from engine.config import LifecycleConfig, Settings, StrategyInstanceConfig
from engine.data.simulator import SimulatedExchange
from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.exchange_client import exchange_from_env
from engine.execution.orders import OrderBlocked, OrderRequest, client_order_id, get_order, instance_tag
from engine.execution.paper_broker import PaperBroker
from engine.execution.router import StageRouter, broker_label, venue_for
from engine.store.ops import list_alerts
from engine.store.schema import audit_log, strategy_instances
from engine.trading import lifecycle
from tests.support.ccxt_replay import RECORDINGS, install_replay

ENV = {"QUANTDESK_API_KEY": "test-key-7f3a91c2", "QUANTDESK_API_SECRET": "test-secret-b84d02e6aa"}


def _settings(**stages: str) -> Settings:
    inst = {k: StrategyInstanceConfig(strategy="quantum_momentum", capital=10_000.0, stage=v, symbols=("BTC/USDT",))
            for k, v in stages.items()}
    return dataclasses.replace(Settings(), strategies=inst)


def _set_stage(store, inst_id: str, stage: str) -> None:
    with store.begin() as conn:
        conn.execute(update(strategy_instances).where(strategy_instances.c.id == inst_id).values(stage=stage))


@pytest.fixture
def desk(store):
    lifecycle.sync_instances(store, _settings(pp="paper", ls="paper", rs="research"))
    _set_stage(store, "ls", "live-small")  # as a confirmed promotion would have left it
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT"], speed=1.0, clock=lambda: 1_767_225_600.0)
    paper = PaperBroker(store, sim, latency_ms=0.0)
    exchange = exchange_from_env("binance", ENV)
    replay = install_replay(exchange, recordings=(RECORDINGS / "binance", RECORDINGS / "binance" / "orders"))
    live = CcxtBroker(store, exchange, max_retries=1, symbols=["BTC/USDT"], sleep=lambda s: None)
    router = StageRouter(store, paper, live, lambda i: lifecycle.get_instance(store, i).stage)
    return router, replay


def _req(inst: str, coid: str, qty: float = 0.01) -> OrderRequest:
    return OrderRequest(instance_id=inst, symbol="BTC/USDT", side="buy", qty=qty, client_order_id=coid)


def test_a_paper_instance_in_a_live_engine_never_reaches_the_exchange(store, desk):
    router, replay = desk
    row = router.submit(_req("pp", client_order_id("pp", "BTC/USDT", 1)))
    assert row["venue"] == "paper" and get_order(store, row["client_order_id"])["status"] == "filled"
    assert replay.calls_to("/api/v3/order") == []  # the paper order stayed on paper
    live = router.submit(_req("ls", "qd-mkt-1"))
    assert live["venue"] == "exchange" and live["exchange_order_id"] == "37193840101"
    (post,) = replay.calls_to("/api/v3/order")
    assert post.params["newClientOrderId"] == "qd-mkt-1"
    router.process()  # polling the exchange never touches the paper order, and paper matching never the live one
    assert [c.method for c in replay.calls_to("/api/v3/order")] == ["POST"]
    with pytest.raises(OrderBlocked, match="research"):
        router.submit(_req("rs", client_order_id("rs", "BTC/USDT", 1)))


def test_live_small_trades_a_fraction_of_its_capital_on_the_exchange(store, desk):
    router, replay = desk
    inst = lifecycle.get_instance(store, "ls")
    cfg = LifecycleConfig(live_small_fraction=0.1)
    router.set_capital_cap("ls", inst.effective_capital(cfg))  # 1,000 of its 10,000
    with pytest.raises(OrderBlocked, match="capital cap"):
        router.submit(_req("ls", "qd-big-1", qty=0.05))  # ~2,100 notional at ~42,000
    assert replay.calls_to("/api/v3/order") == []


def test_a_paper_engine_trades_no_live_stage_instance_and_says_why(store):
    lifecycle.sync_instances(store, _settings(ls="paper"))
    _set_stage(store, "ls", "live")
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT"], speed=1.0, clock=lambda: 1_767_225_600.0)
    router = StageRouter(store, PaperBroker(store, sim, latency_ms=0.0), None,
                         lambda i: lifecycle.get_instance(store, i).stage)
    with pytest.raises(OrderBlocked, match="not started with --live"):
        router.submit(_req("ls", client_order_id("ls", "BTC/USDT", 1)))
    assert any(a.rule == "router.not_live" for a in list_alerts(store))
    assert venue_for("live", False) is None and venue_for("live", True) == "exchange"
    assert broker_label("paper", True, "binance") == "paper"
    assert broker_label("live-small", True, "binance") == "exchange:binance"


def test_a_config_stage_past_paper_seeds_at_paper_with_an_alert_and_audit(store):
    lifecycle.sync_instances(store, _settings(eager="live", small="live-small", pp="paper", rs="research"))
    stages = {i.id: i.stage for i in lifecycle.list_instances(store)}
    assert stages == {"eager": "paper", "small": "paper", "pp": "paper", "rs": "research"}
    clamped = {a.values["instance_id"] for a in list_alerts(store) if a.rule == "lifecycle.seed_clamped"}
    assert clamped == {"eager", "small"}
    with store.connect() as conn:
        seeds = [r for r in conn.execute(audit_log.select().where(audit_log.c.action == "strategy.seed")).mappings()]
    assert len(seeds) == 4
    # a promotion still needs a passing gate report and the operator's confirmation
    with pytest.raises(lifecycle.LifecycleError, match="gate not met"):
        lifecycle.promote(store, "eager", LifecycleConfig(), confirm=True, source="cli", user="op")


def test_client_order_ids_carry_the_instance_and_stay_idempotent():
    a = client_order_id("qm_fast-1", "BTC/USDT", 123)
    assert a.startswith(f"qd-{instance_tag('qm_fast-1')}-") and instance_tag("qm_fast-1") == "qmfast1"
    assert a == client_order_id("qm_fast-1", "BTC/USDT", 123) and len(a) <= 32
    assert a != client_order_id("qm_fast-2", "BTC/USDT", 123)


def test_a_promotion_to_live_small_is_not_a_drawdown(store):
    """Seen on the twin: promoting a 20,000 instance to live-small (10%) dropped portfolio equity by 18,000 and the
    daily-drawdown trigger HALTED the desk. The held-back capital is still the desk's."""
    from engine.trading.portfolio import valuation

    lifecycle.sync_instances(store, _settings(a="paper", b="paper"))
    cfg = LifecycleConfig(live_small_fraction=0.1)
    before = valuation(store, lambda s: 1.0, cfg)["portfolio"]["equity"]
    _set_stage(store, "b", "live-small")
    after = valuation(store, lambda s: 1.0, cfg)
    assert after["portfolio"]["equity"] == pytest.approx(before) == pytest.approx(20_000.0)
    assert after["b"]["equity"] == pytest.approx(1_000.0)  # the instance's own record runs on its stage's capital


def test_only_the_exchange_venue_refuses_shorts_on_spot(store, desk):
    """Spot on an exchange cannot go below zero (no borrowing): a live instance's short signal there must be held
    flat, not sent to be rejected bar after bar. Paper keeps the backtest's semantics; perps can be shorted."""
    router, _ = desk
    assert not router.can_short("ls", "BTC/USDT") and router.can_short("ls", "BTC/USDT:USDT")
    assert router.can_short("pp", "BTC/USDT") and router.paper.can_short("pp", "BTC/USDT")
    assert router.can_short("rs", "BTC/USDT")  # research places no orders at all: nothing to refuse here
