"""At start the live broker sweeps orphan orders on the twin: ours without a state.db row are canceled, foreign ones
are left alone and named (issue 13, item 4: orphans by client id prefix, within 10 s of start)."""

from __future__ import annotations

import time

from engine.execution.ccxt_broker import CcxtBroker
from engine.store.ops import list_alerts


def test_orphans_of_this_desk_are_canceled_and_foreign_orders_left_alone(store, twin):
    ex = twin.exchange()
    ex.load_markets()
    low = float(ex.price_to_precision("BTC/USDT", ex.fetch_ticker("BTC/USDT")["last"] * 0.5))
    ex.create_order("BTC/USDT", "limit", "buy", 0.001, low, {"clientOrderId": "qd-ls-orphan0000000001"})
    ex.create_order("BTC/USDT", "limit", "buy", 0.001, low, {"clientOrderId": "manual-by-hand-1"})
    broker = CcxtBroker(store, twin.exchange(), max_retries=1, symbols=["BTC/USDT"], sleep=lambda s: None)
    t0 = time.monotonic()
    summary = broker.recover()
    took = time.monotonic() - t0
    assert summary["orphans"] == {"canceled": ["qd-ls-orphan0000000001"], "foreign": ["manual-by-hand-1"],
                                  "adopted": []}
    assert took < 10.0
    left = [o["clientOrderId"] for o in ex.fetch_open_orders("BTC/USDT")]
    assert left == ["manual-by-hand-1"]
    rules = {a.rule for a in list_alerts(store)}
    assert {"recon.orphan_canceled", "recon.foreign_orders"} <= rules
    assert broker.recover()["orphans"] == {"canceled": [], "foreign": ["manual-by-hand-1"], "adopted": []}  # idempotent
