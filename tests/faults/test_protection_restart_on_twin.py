"""A real live engine (subprocess, ccxt over HTTP to the twin) keeps its position protected across kill -9: the stop
rests on the exchange while the engine is dead, and a restart re-arms a protective order someone deleted within
10 s of the process start (issue 13, "restart re-arms protection")."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.support.backends import raw
from engine.execution.protection import parse_protective_id
from tests.support.live_desk import engine_env, live_config, promote_live_small, start_live_engine
from tests.support.twin import start_twin
from tests.support.waiting import wait_for

SYMBOL = "BTC/USDT"


def _ls_held(store) -> float:
    with raw(store) as conn:
        return float(conn.execute("SELECT COALESCE(SUM(qty), 0) FROM positions WHERE instance_id='ls' AND "
                                  "symbol=?", (SYMBOL,)).fetchone()[0])


def _protective(ex) -> list[dict]:
    return [o for o in ex.fetch_open_orders(SYMBOL) if (parse_protective_id(str(o["clientOrderId"])) or ("",))[0]
            == "ls"]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _rearm_timeline(store, nth: int) -> dict | None:
    """The start-up timeline of the engine's nth live start (audit `engine.start_timeline`: {phase: [wall s since
    the process was created, cpu s]}), None before it is there."""
    with raw(store) as conn:
        rows = conn.execute("SELECT details FROM audit_log WHERE action='engine.start_timeline' ORDER BY id").fetchall()
    return json.loads(rows[nth - 1][0]) if len(rows) >= nth else None


@pytest.mark.slow
def test_kill9_leaves_the_stop_on_the_exchange_and_restart_rearms_a_deleted_one_within_10s(tmp_path, state_url):
    twin = start_twin(tmp_path / "venue.db", speed=60.0)
    cfg = live_config(tmp_path, twin.base_url, extra="")
    state = state_url
    store = promote_live_small(state, cfg)
    env = engine_env(twin.api_key, twin.api_secret)
    ex = twin.exchange()
    ex.load_markets()
    proc = start_live_engine(tmp_path, cfg, state, env)
    try:
        from engine.control.client import ControlClient

        client = ControlClient(store, source="cli", user="tester", timeout_s=30.0, heartbeat_timeout_s=3.0)
        wait_for(client.engine_alive, 60, "live engine heartbeat")
        wait_for(lambda: _ls_held(store) > 0 and _protective(ex), 150,
                 "the live-small instance to hold BTC with a protective stop on the twin")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # dead engine: the position is still protected on the exchange
        (stop,) = _protective(ex)
        assert stop["info"]["type"] == "STOP_LOSS_LIMIT" and stop["side"] == "sell"
        held = _ls_held(store)
        assert float(stop["amount"]) == pytest.approx(float(ex.amount_to_precision(SYMBOL, held)))
        ex.cancel_order(stop["id"], SYMBOL)  # someone deletes it by hand (signed cancel)
        assert _protective(ex) == []
        t0 = time.monotonic()
        proc = start_live_engine(tmp_path, cfg, state, env)
        rearmed = wait_for(lambda: _protective(ex), 30, "a protective order after the restart", interval=0.1)
        took = time.monotonic() - t0
        assert took < 10.0, f"protection re-armed {took:.1f} s after the start"
        assert rearmed[0]["clientOrderId"] != stop["clientOrderId"]
        (tmp_path / "rearm_seconds.txt").write_text(f"{took:.2f}\n")
        print(f"protective order re-armed {took:.2f} s after the engine process started (load {_load()})")
        # the engine's own account (seconds since the OS created the process): the restart re-armed from the
        # desk's cached markets, before the full market load and the strategy imports
        timeline = wait_for(lambda: _rearm_timeline(store, 2), 30, "the restart's protection.rearmed audit")
        assert "markets (cached)" in timeline and "markets" not in timeline, timeline
        assert timeline["rearmed"][0] <= timeline["markets + strategy check"][0], timeline
        assert timeline["rearmed"][0] < 10.0, timeline
        print(f"engine start-up timeline [wall s since process creation, cpu s]: {timeline}")
        res = client.flatten()
        assert res.ok and res.data.get("flat") is True, res.data
        assert ex.fetch_open_orders(SYMBOL) == []  # flatten pulled the protective stop too (last)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except Exception:  # noqa: BLE001
                proc.kill()
        twin.stop()


@pytest.mark.slow
def test_a_spot_oco_survives_kill9_and_a_deleted_list_is_rearmed_within_10s(tmp_path):
    """With a take-profit the live-small BTC position rests as one OCO list (stop + LIMIT_MAKER); kill -9 leaves it on
    the exchange; deleted by hand (DELETE /api/v3/orderList), a restart puts a new list back within 10 s of the
    process start; flatten leaves no order list."""
    twin = start_twin(tmp_path / "venue.db", speed=60.0)
    cfg = live_config(tmp_path, twin.base_url, extra="[risk]\nprotective_take_profit_pct = 0.05\n")
    state = tmp_path / "state.db"
    store = promote_live_small(state, cfg)
    env = engine_env(twin.api_key, twin.api_secret)
    ex = twin.exchange()
    ex.load_markets()
    proc = start_live_engine(tmp_path, cfg, state, env)
    try:
        from engine.control.client import ControlClient

        client = ControlClient(store, source="cli", user="tester", timeout_s=30.0, heartbeat_timeout_s=3.0)
        wait_for(client.engine_alive, 60, "live engine heartbeat")
        wait_for(lambda: _ls_held(store) > 0 and ex.privateGetOpenOrderList(), 150,
                 "the live-small instance to hold BTC with an OCO list on the twin")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        (lst,) = ex.privateGetOpenOrderList()
        legs = sorted(o["info"]["type"] for o in _protective(ex))
        assert legs == ["LIMIT_MAKER", "STOP_LOSS_LIMIT"] and lst["listClientOrderId"].startswith("qd-ls-pl")
        ex.privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": lst["orderListId"]})
        assert ex.privateGetOpenOrderList() == [] and _protective(ex) == []
        t0 = time.monotonic()
        proc = start_live_engine(tmp_path, cfg, state, env)
        (again,) = wait_for(lambda: ex.privateGetOpenOrderList(), 30, "an OCO list after the restart", interval=0.1)
        took = time.monotonic() - t0
        assert took < 10.0, f"OCO re-armed {took:.1f} s after the start"
        assert again["orderListId"] != lst["orderListId"]
        print(f"OCO list re-armed {took:.2f} s after the engine process started (load {_load()})")
        res = client.flatten()
        assert res.ok and res.data.get("flat") is True, res.data
        assert ex.privateGetOpenOrderList() == [] and ex.fetch_open_orders(SYMBOL) == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except Exception:  # noqa: BLE001
                proc.kill()
        twin.stop()
