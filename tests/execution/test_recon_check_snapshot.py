"""The reconciliation check (stored positions == the sum of their fills) reads both in one snapshot.

It read fills and positions in two statements, so a fill committed between them (the engine's own trader, another
thread) looked like a mismatch: `trigger.recon_mismatch` HALTED a fresh paper desk at simulator speed 1008 a minute
in. Here a writer books fills while the check runs; the check must never report a mismatch. Both backends."""

from __future__ import annotations

import threading

from engine.execution.orders import Fill, OrderRequest, check_positions_match_fills, insert_order, record_fill
from engine.store import open_store


def test_the_check_never_sees_half_of_a_fill_being_booked(backend_url: str) -> None:
    store = open_store(backend_url)
    stop, booked, seen = threading.Event(), [0], []

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            coid = f"qd-race-{k}"
            side = "buy" if k % 2 else "sell"
            insert_order(store, OrderRequest(instance_id="qm", symbol="BTC/USDT", side=side, qty=0.5,
                                             client_order_id=coid), 1_000 + k)
            record_fill(store, Fill(f"{coid}:1", coid, "qm", "BTC/USDT", side, 0.5, 100.0, 0.0, "taker", 1_000 + k))
            booked[0] = k

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        checks = 0
        while booked[0] < 300 and checks < 20_000:
            bad = check_positions_match_fills(store)
            if bad:
                seen.append(bad)
            checks += 1
    finally:
        stop.set()
        thread.join(30)
        store.dispose()
    assert booked[0] >= 300, f"the writer booked only {booked[0]} fills"
    assert seen == [], f"{len(seen)} of {checks} checks saw a mismatch while fills were booked, first: {seen[0]}"
