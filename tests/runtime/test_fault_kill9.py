"""Restart safety: SIGKILL a real paper-trading engine at 20+ random moments, restart it each time, and check that
no fill is lost, no client order id is duplicated, positions equal the sum of fills, and HALTED survives restarts."""

from __future__ import annotations

import json
from collections import Counter
import random
import time

import pytest
from rt_helpers import rows, scalar, start_engine, stop_engine, store_ready, wait_for, write_config

from engine.execution.orders import check_positions_match_fills
from engine.control.client import ControlClient

N_KILLS = 22
HALT_AT, RESUME_AT = 11, 16  # kills 11..15 happen while HALTED
KILL_AFTER_AN_ORDER = frozenset({2, 5, 8, 18, 20})  # outside the HALTED window: wait for trading first


def _running(store, pid: int) -> bool:
    """The engine process `pid` (not a killed predecessor) reports phase running."""
    row = rows(store, "SELECT pid, info FROM engine_status WHERE name = 'main'")
    return bool(row) and row[0][0] == pid and json.loads(row[0][1]).get("phase") == "running"


def _fills(store) -> set[str]:
    return {r[0] for r in rows(store, "SELECT fill_id FROM fills")}


@pytest.mark.slow
@pytest.mark.timeout(600)  # 22 kills and restarts; on PostgreSQL too, and CI runs two tests at a time
def test_kill9_at_random_moments_loses_nothing(engine_dir, state_url, report):
    rng = random.Random(20261122)
    # rebalance_band = 0: every bar re-sizes every position, so orders and fills flow all the time
    # a 250 ms paper latency widens the window between "order recorded" and "filled", where a kill hurts most
    cfg = write_config(engine_dir, speed=60.0, extra="rebalance_band = 0.0\nmin_order_notional = 1.0",
                       latency_ms=250.0)
    state = state_url
    proc = start_engine(engine_dir, cfg, state)
    try:
        store = wait_for(lambda: store_ready(state), 60, "the engine's store")
        client = ControlClient(store, source="cli", user="fault-test", heartbeat_timeout_s=3.0)
        wait_for(lambda: scalar(store, "SELECT COUNT(*) FROM fills"), 90, "first fill")
    except BaseException:
        stop_engine(proc)  # a failed start-up wait must not leave the engine running after the test
        raise
    alive_kills, halted_checks, halt_ts = 0, 0, None  # halt_ts: max order id at HALT
    lifetimes_with_orders = 0
    t0 = time.monotonic()
    try:
        for i in range(N_KILLS):
            if i == HALT_AT:
                wait_for(client.engine_alive, 30, "engine alive before halt")
                assert client.halt("fault test").ok
                halt_ts = scalar(store, "SELECT MAX(id) FROM orders") or 0
            if i == RESUME_AT:
                wait_for(client.engine_alive, 30, "engine alive before resume")
                assert (scalar(store, "SELECT MAX(id) FROM orders") or 0) == halt_ts, "orders created while HALTED"
                assert client.resume(confirm=True).ok
            orders_before = scalar(store, "SELECT COUNT(*) FROM orders")
            if i in KILL_AFTER_AN_ORDER:  # give these lifetimes up to 30 s to send an order, then kill around it
                deadline = time.monotonic() + 30
                while scalar(store, "SELECT COUNT(*) FROM orders") <= orders_before and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(rng.uniform(0.0, 0.5))  # the order recorded, in flight or filled
            elif rng.random() < 0.75:  # mostly while trading; otherwise at a random moment of start-up/recovery
                wait_for(lambda: _running(store, proc.pid), 60, f"engine running before kill {i}")
                time.sleep(rng.uniform(0.5, 2.5))
            else:
                time.sleep(rng.uniform(0.05, 2.0))
            alive_kills += int(client.engine_alive())
            before = _fills(store)
            proc.kill()
            proc.wait(10)
            after_kill = _fills(store)
            assert before <= after_kill, f"kill {i}: fills vanished: {sorted(before - after_kill)[:5]}"
            lifetimes_with_orders += int(scalar(store, "SELECT COUNT(*) FROM orders") > orders_before)
            assert check_positions_match_fills(store) == [], f"kill {i}: positions != sum of fills"
            proc = start_engine(engine_dir, cfg, state)
            if HALT_AT <= i < RESUME_AT:
                wait_for(client.engine_alive, 30, f"engine alive after kill {i}")
                assert client.status().trading_state == "HALTED", f"kill {i}: HALTED was not preserved"
                halted_checks += 1
        wait_for(client.engine_alive, 30, "engine alive after the last restart")
        time.sleep(2.0)
        assert stop_engine(proc) == 0
        elapsed = time.monotonic() - t0

        # 0 lost fills: every order's fills add up to its filled quantity, and nothing is stuck unsent.
        mism = rows(store, "SELECT o.client_order_id, o.filled_qty, COALESCE(SUM(f.qty), 0) FROM orders o "
                           "LEFT JOIN fills f ON f.client_order_id = o.client_order_id "
                           "GROUP BY o.client_order_id, o.filled_qty "
                           "HAVING ABS(o.filled_qty - COALESCE(SUM(f.qty), 0)) > 1e-9")
        assert mism == [], f"orders whose fills do not add up: {mism[:5]}"
        assert scalar(store, "SELECT COUNT(*) FROM orders WHERE status = 'new'") == 0
        # 0 duplicate client order ids, and never two orders for one (instance, symbol, bar) decision.
        n_orders = scalar(store, "SELECT COUNT(*) FROM orders")
        assert scalar(store, "SELECT COUNT(DISTINCT client_order_id) FROM orders") == n_orders
        decisions = Counter((i, s, r.split(" ")[1]) for i, s, r in rows(
            store, "SELECT instance_id, symbol, reason FROM orders WHERE reason LIKE 'bar %'"))
        dup = [k for k, n in decisions.items() if n > 1]
        assert dup == [], f"one decision produced several orders: {dup[:3]}"
        assert scalar(store, "SELECT COUNT(*) FROM fills") == len(_fills(store))
        assert check_positions_match_fills(store) == []
        n_fills = scalar(store, "SELECT COUNT(*) FROM fills")
        recov = [json.loads(d) for (d,) in rows(store, "SELECT details FROM audit_log WHERE action='engine.recover'")]
        report("kill -9 fault test", {"kills": N_KILLS, "kills_while_engine_alive": alive_kills,
                                      "restarts_checked_halted": halted_checks, "orders": n_orders, "fills": n_fills,
                                      "lifetimes_that_sent_orders": lifetimes_with_orders,
                                      "recoveries": len(recov),
                                      "recoveries_resubmitting_unsent_orders": sum(  # one summary per venue (paper, exchange)
                                          any(v.get("resubmitted", 0) > 0 for v in r.values() if isinstance(v, dict))
                                          for r in recov),
                                      "lost_fills": len(mism), "duplicate_client_ids": 0,
                                      "elapsed_s": round(elapsed, 1)})
        assert alive_kills >= N_KILLS // 2, "too few kills hit a running engine"
        assert lifetimes_with_orders >= 4, "too few engine lifetimes traded between kills"
        assert halted_checks == RESUME_AT - HALT_AT
    finally:
        stop_engine(proc)
