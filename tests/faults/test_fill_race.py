"""Two threads of a live engine sync the same order at once (the submit path with the exchange's answer, which lists
its trades, and the order poll, whose answer has none): the fill must be booked once. Each read the order's filled
quantity 0 before either wrote, computed the same delta under two fill ids (`:<trade id>` and `:cum<filled>`), and
both were inserted: state.db held twice what the exchange did (seen on PostgreSQL, whose concurrent transactions do
not serialise the way SQLite's single writer does). Real CcxtBroker on the exchange twin, each store backend."""

from __future__ import annotations

import threading

import pytest

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.orders import OrderRequest, check_positions_match_fills, get_order, insert_order
from tests.support.backends import raw

SPOT = "BTC/USDT"
ROUNDS = 12


def _answer(coid: str, qty: float, price: float, with_trades: bool) -> dict:
    """A ccxt order structure for a fully filled market buy: the create answer lists trades, a later poll does not."""
    order = {"id": f"x-{coid}", "clientOrderId": coid, "symbol": SPOT, "status": "closed", "filled": qty,
             "amount": qty, "average": price, "price": price, "timestamp": 1_800_000_000_000,
             "fee": {"cost": qty * price * 0.001, "currency": "USDT"}}
    if with_trades:
        order["trades"] = [{"id": "7001", "amount": qty, "price": price}]
    return order


@pytest.mark.parametrize("first", ["trades", "poll"])
def test_one_fill_when_two_threads_sync_one_order_at_once(store, twin, first: str) -> None:  # noqa: ANN001
    broker = CcxtBroker(store, twin.exchange(), symbols=[SPOT], sleep=lambda s: None)
    for i in range(ROUNDS):
        coid = f"qd-ls-race{first[0]}{i:02d}"
        insert_order(store, OrderRequest("ls", SPOT, "buy", 0.01, coid), 1_800_000_000_000, venue="exchange")
        gate = threading.Barrier(2)
        errors: list[BaseException] = []

        def sync(with_trades: bool, c: str = coid) -> None:
            gate.wait()
            try:
                broker.sync_order(_answer(c, 0.01, 40_000.0, with_trades), c)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        order = [True, False] if first == "trades" else [False, True]
        threads = [threading.Thread(target=sync, args=(w,)) for w in order]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        with raw(store) as conn:
            booked = conn.execute("SELECT COUNT(*), SUM(qty) FROM fills WHERE client_order_id = ?", (coid,)).fetchone()
        assert booked[0] == 1 and booked[1] == pytest.approx(0.01), (i, booked)
        assert get_order(store, coid)["filled_qty"] == pytest.approx(0.01)
    assert check_positions_match_fills(store) == []
