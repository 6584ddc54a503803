"""ccxt's async websocket client (ccxt.pro.binance) against the twin: trades, klines, depth sync, mark price,
user-data events, and the stream faults (dropped sockets, stale streams)."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from tests.support.twin import start_twin


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def fast_twin(tmp_path):
    """A twin at 30x so streams carry a few trades per tick."""
    handle = start_twin(tmp_path / "venue.db", speed=30)
    yield handle
    handle.stop()


def test_streams_trades_klines_and_mark_price_agree_with_the_simulator(fast_twin):
    sim = fast_twin.twin.sim

    async def main():
        ex = fast_twin.pro_exchange()
        try:
            seen = []
            while len(seen) < 20:
                seen.extend(await ex.watch_trades("BTC/USDT"))
            first, last = seen[0]["timestamp"], seen[-1]["timestamp"]
            expected = sim.fetch_trades("BTC/USDT", since=first, limit=5000)
            expected = [t for t in expected if t["timestamp"] <= last]
            assert [(t["id"], t["price"], t["amount"], t["side"]) for t in seen] == \
                [(t["id"], t["price"], t["amount"], t["side"]) for t in expected]  # no trade lost or invented
            bars = await ex.watch_ohlcv("ETH/USDT", "1m")
            bar = bars[-1]
            assert sim.fetch_ohlcv("ETH/USDT", "1m", since=bar[0], limit=1)[0][:2] == bar[:2]
            perp = await ex.watch_trades("SOL/USDT:USDT")
            assert perp and perp[0]["symbol"] == "SOL/USDT:USDT"
            mark = await ex.watch_mark_price("BTC/USDT:USDT")
            assert mark["markPrice"] > 0 and mark["info"]["e"] == "markPriceUpdate" and "r" in mark["info"]
        finally:
            await ex.close()

    _run(main())


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT:USDT"])
def test_order_book_sync_snapshot_plus_diffs_equals_the_twins_book(fast_twin, symbol):
    listing = fast_twin.twin.listings.by_symbol(symbol)

    async def main():
        ex = fast_twin.pro_exchange()
        try:
            nonces = []
            for _ in range(8):
                book = await ex.watch_order_book(symbol)
                nonces.append(book["nonce"])
            assert nonces == sorted(nonces) and nonces[-1] > nonces[0]  # diffs applied in sequence
            # freeze publishing: the twin's book then stays at the last update it sent
            await asyncio.to_thread(fast_twin.set_faults, stale_streams=True)
            await asyncio.sleep(0.3)
            state = fast_twin.twin.feed._books[(listing.market, listing.id)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while ex.orderbooks[symbol]["nonce"] != state.last_id and loop.time() < deadline:
                await asyncio.sleep(0.05)
            synced = ex.orderbooks[symbol]
            assert synced["nonce"] == state.last_id
            assert synced["bids"] == [[float(p), float(a)] for p, a in state.levels("bids")]
            assert synced["asks"] == [[float(p), float(a)] for p, a in state.levels("asks")]
        finally:
            await ex.close()

    _run(main())


async def _cached_order(ex, client_id, status, timeout=10.0):
    """The order with client_id in ccxt's websocket order cache once it reaches status (events that arrive
    between two watch_orders calls land in the cache, not in the next call's result)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = [o for o in (ex.orders or []) if o["clientOrderId"] == client_id and o["status"] == status]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {client_id} never reached {status} in the websocket cache")


def test_user_data_events_for_spot_and_futures_orders(fast_twin):
    async def main():
        ex = fast_twin.pro_exchange()
        try:
            await ex.load_markets()
            spot = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            await asyncio.sleep(0.3)
            await ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "qd-ws-spot"})
            orders = await asyncio.wait_for(spot, 10)
            assert any(o["clientOrderId"] == "qd-ws-spot" for o in orders)
            final = await _cached_order(ex, "qd-ws-spot", "closed")
            assert final["filled"] == 0.01
            perp = asyncio.create_task(ex.watch_orders("BTC/USDT:USDT"))
            await asyncio.sleep(0.3)
            bid = (await ex.fetch_order_book("BTC/USDT:USDT"))["bids"][0][0]
            placed = await ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, round(bid * 0.95, 1),
                                           params={"newClientOrderId": "qd-ws-perp"})
            orders = await asyncio.wait_for(perp, 10)
            assert orders[-1]["clientOrderId"] == "qd-ws-perp" and orders[-1]["status"] == "open"
            await ex.cancel_order(placed["id"], "BTC/USDT:USDT")
            assert (await _cached_order(ex, "qd-ws-perp", "canceled"))["id"] == placed["id"]
        finally:
            await ex.close()

    _run(main())


def test_dropped_websockets_raise_network_errors_and_stale_streams_go_quiet(fast_twin):
    async def main():
        ex = fast_twin.pro_exchange()
        try:
            await ex.watch_trades("BTC/USDT")
            hub = fast_twin.twin.hub
            before = set(hub.sockets)
            pending = asyncio.create_task(ex.watch_trades("BTC/USDT"))
            dropped = (await asyncio.to_thread(fast_twin.set_faults, drop_ws=True))["dropped"]
            assert dropped >= 1 and not (before & set(hub.sockets))  # the client's socket was closed
            raised = False
            for _ in range(50):  # a watch in flight at the drop fails; one started after it reconnects
                try:
                    await asyncio.wait_for(pending, 10)
                except ccxt.NetworkError:
                    raised = True
                    break
                if set(hub.sockets) - before:
                    break
                pending = asyncio.create_task(ex.watch_trades("BTC/USDT"))
            assert raised or set(hub.sockets) - before
            assert await ex.watch_trades("BTC/USDT")  # ccxt reconnects on the next watch
            await asyncio.to_thread(fast_twin.set_faults, stale_streams=True)
            await asyncio.sleep(0.3)  # let in-flight frames arrive
            with pytest.raises(asyncio.TimeoutError):
                while True:
                    await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 1.5)
            await asyncio.to_thread(fast_twin.set_faults, stale_streams=False)
            assert await asyncio.wait_for(ex.watch_trades("BTC/USDT"), 10)
        finally:
            await ex.close()

    _run(main())
