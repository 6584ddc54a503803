"""A storage fault on a live desk cancels resting orders on the exchange itself (the exchange twin over real ccxt),
without the store: the broker's store-based cancel would stop at the first refused write. Orders that are not the
desk's (no qd- client id) are left alone."""

from __future__ import annotations

from pathlib import Path

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.orders import OrderRequest
from engine.runtime.storage_guard import storage_fault_cancel
from engine.store.db import open_store
from tests.support.backends import sqlite_only
from tests.support.twin import twin  # noqa: F401 - fixture


def test_live_resting_orders_are_canceled_on_the_exchange_when_the_store_is_gone(tmp_path: Path, twin,  # noqa: F811
                                                                                   store_backend: str) -> None:
    sqlite_only(store_backend, "the store is removed as a file; the cancel path never reads the store, and a server "
                               "store that went away is tested in test_server_store_faults.py")
    store = open_store(tmp_path / "state.db")
    broker = CcxtBroker(store, twin.exchange(), symbols=["BTC/USDT"], sleep=lambda s: None)
    bid = broker.mark_price("BTC/USDT")
    broker.submit(OrderRequest("a", "BTC/USDT", "buy", 0.01, "qd-a-rest1", type="limit", price=round(bid * 0.9, 2)))
    broker.submit(OrderRequest("a", "BTC/USDT", "buy", 0.01, "qd-a-rest2", type="limit", price=round(bid * 0.8, 2)))
    twin.exchange().create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.7, 2),
                                 params={"newClientOrderId": "manual-1"})  # not the desk's: left alone
    (tmp_path / "state.db").unlink()  # the store is gone: nothing may depend on it

    def store_cancel() -> int:
        raise AssertionError("a live desk must not cancel through the broken store")

    assert storage_fault_cancel(broker, store_cancel) == 2
    left = sorted(o["clientOrderId"] for o in twin.exchange().fetch_open_orders("BTC/USDT"))
    assert left == ["manual-1"]
