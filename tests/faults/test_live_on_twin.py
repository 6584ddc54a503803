"""A live engine over HTTP against the exchange twin: a mixed desk keeps paper on paper, and flatten ends flat."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.support.live_desk import REPO, engine_env, live_config, promote_live_small, start_live_engine
from tests.support.twin import start_twin
from tests.support.waiting import wait_for


@pytest.mark.slow
def test_mixed_desk_sends_only_live_small_orders_to_the_twin_and_flattens(tmp_path):
    twin = start_twin(tmp_path / "venue.db", speed=60.0)
    cfg = live_config(tmp_path, twin.base_url)
    state = tmp_path / "state.db"
    store = promote_live_small(state, cfg)
    proc = start_live_engine(tmp_path, cfg, state, engine_env(twin.api_key, twin.api_secret))
    try:
        from engine.control.client import ControlClient

        client = ControlClient(store, source="cli", user="tester", timeout_s=30.0, heartbeat_timeout_s=3.0)
        wait_for(client.engine_alive, 60, "live engine heartbeat")

        def both_traded():
            with store.raw() as conn:
                got = dict(conn.execute("SELECT venue, COUNT(*) FROM orders GROUP BY venue").fetchall())
            return got.get("paper", 0) > 0 and got.get("exchange", 0) > 0

        wait_for(both_traded, 120, "orders from the paper and the live-small instance")
        with store.raw() as conn:
            by_inst = dict(conn.execute("SELECT instance_id, GROUP_CONCAT(DISTINCT venue) FROM orders "
                                        "GROUP BY instance_id").fetchall())
        assert by_inst == {"pp": "paper", "ls": "exchange"}
        on_twin = [o["clientOrderId"] for o in twin.exchange().fetch_orders("BTC/USDT")]
        assert on_twin and all(coid.startswith("qd-ls-") for coid in on_twin), on_twin
        res = client.flatten()
        assert res.ok, res.message
        assert res.data.get("flat") is True, res.data
        ex = twin.exchange()
        bal = ex.fetch_balance()
        assert ex.fetch_open_orders("BTC/USDT") == []
        dust = max(ex.markets["BTC/USDT"]["limits"]["amount"]["min"] or 0.0,
                   ex.markets["BTC/USDT"]["precision"]["amount"])
        assert bal["total"].get("BTC", 0.0) < dust  # flat: only commission crumbs below the minimum amount
        with store.raw() as conn:
            assert conn.execute("SELECT COUNT(*) FROM orders WHERE status IN ('new','open','partial')").fetchone() \
                == (0,)
        assert twin.api_secret not in (tmp_path / "engine.stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        twin.stop()
