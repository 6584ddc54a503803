"""The watchdog's cancel path over the wire: a live engine's heartbeat stops, and the watchdog cancels resting
non-protective orders on the exchange twin (real ccxt over HTTP, signed requests) with the engine's own broker code,
keeping the protective stop; its alert says what it did. The heartbeat coming back is announced."""

from __future__ import annotations

import dataclasses
import json

from sqlalchemy import insert

from engine.clock import now_ms
from engine.config import AlertsConfig, Settings, settings_with
from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.exchange_client import API_KEY_ENV, API_SECRET_ENV
from engine.execution.orders import OrderRequest, open_orders
from engine.monitoring.alerts.service import AlertService
from engine.runtime.watchdog import Watchdog
from engine.store.ops import list_alerts
from engine.store.schema import engine_status, notify_events
from tests.support.twin import twin  # noqa: F401 - fixture


def _beat(store, age_s: float, mode: str = "live") -> None:
    now = now_ms()
    with store.begin() as conn:
        conn.execute(engine_status.delete())
        conn.execute(insert(engine_status).values(id=1, pid=4242, host="desk", mode=mode, started_at=now - 60_000,
                                                  heartbeat_at=now - int(age_s * 1000), version="t",
                                                  info=json.dumps({"stopped": False, "phase": "running"})))


def test_watchdog_cancels_resting_orders_on_the_twin_and_keeps_protective_ones(store, twin) -> None:  # noqa: F811
    settings = settings_with(Settings(), data={"source": "ccxt:binance", "symbols": ("BTC/USDT",)},
                             alerts={"watchdog_threshold_s": 2.0, "watchdog_cancel_orders": True})
    settings = dataclasses.replace(settings, strategies={}, exchange=dataclasses.replace(settings.exchange,
                                                                                         base_url=twin.base_url))
    broker = CcxtBroker(store, twin.exchange(), symbols=["BTC/USDT"], sleep=lambda s: None)
    broker.submit(OrderRequest("a", "BTC/USDT", "buy", 0.02, "qd-a-hold"))
    bid = broker.mark_price("BTC/USDT")
    broker.submit(OrderRequest("a", "BTC/USDT", "buy", 0.01, "qd-a-rest", type="limit", price=round(bid * 0.9, 2)))
    broker.submit(OrderRequest("a", "BTC/USDT", "sell", 0.01, "qd-a-stop", type="limit", price=round(bid * 1.5, 2),
                               reason="protect stop 0.01 BTC/USDT"))
    twin.exchange().create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.8, 2),
                                 params={"newClientOrderId": "qd-a-orphan"})  # ours, but state.db lost it
    assert sorted(o["client_order_id"] for o in open_orders(store)) == ["qd-a-rest", "qd-a-stop"]

    alerting = AlertService(settings, {})
    alerting.start(store, name="watchdog", escalate=False, summary=False)
    try:
        environ = {API_KEY_ENV: twin.api_key, API_SECRET_ENV: twin.api_secret}
        dog = Watchdog(settings, store, alerting, environ=environ)  # the production broker path (connect_exchange)
        _beat(store, age_s=0.5)
        assert dog.check() is None  # alive: nothing happens
        _beat(store, age_s=5.0)
        assert dog.check() == "down"
        assert dog.check() is None  # alerted once
        _beat(store, age_s=0.2)
        assert dog.check() == "back"
    finally:
        alerting.stop()
    on_exchange = [o["clientOrderId"] for o in twin.exchange().fetch_open_orders("BTC/USDT")]
    assert on_exchange == ["qd-a-stop"]
    assert [o["client_order_id"] for o in open_orders(store)] == ["qd-a-stop"]
    down = [a for a in list_alerts(store) if a.rule == "watchdog.engine_down"]
    assert len(down) == 1 and down[0].severity == "critical"
    assert "canceled 2 resting order(s), kept 1 protective" in down[0].message
    assert sorted(down[0].values["canceled"]) == ["qd-a-orphan", "qd-a-rest"]
    with store.connect() as conn:
        back = conn.execute(notify_events.select().where(notify_events.c.rule == "watchdog.engine_up")).all()
    assert len(back) == 1


def test_watchdog_leaves_orders_alone_unless_configured_or_paper(store) -> None:
    for cfg, mode in ((AlertsConfig(watchdog_threshold_s=1.0), "live"),
                      (AlertsConfig(watchdog_threshold_s=1.0, watchdog_cancel_orders=True), "paper")):
        settings = dataclasses.replace(Settings(), alerts=cfg)
        alerting = AlertService(settings, {})
        alerting.start(store, name="watchdog", escalate=False, summary=False)
        try:
            dog = Watchdog(settings, store, alerting, broker_factory=lambda: (_ for _ in ()).throw(
                AssertionError("the broker must not be built")))
            _beat(store, age_s=3.0, mode=mode)
            assert dog.check() == "down"
        finally:
            alerting.stop()
    assert all("canceled" not in a.message for a in list_alerts(store) if a.rule == "watchdog.engine_down")
