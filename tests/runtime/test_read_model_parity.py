"""One read model: `quantdesk status --json` and the console header read the same numbers from the same state.db.

The store is filled the way the engine fills it: equity snapshots stamped with a simulator's market clock at speed
> 1 (so market days run far ahead of the wall-clock day), a live engine row, an open position and an open order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time

from sqlalchemy import insert
from typer.testing import CliRunner

from console.cli import _register_all, app
from engine.clock import now_ms
from engine.config import Settings
from engine.control.reader import StateReader
from engine.data.simulator import SimulatedExchange
from engine.store.db import open_store
from engine.store.schema import engine_status, orders, positions
from engine.trading.lifecycle import sync_instances
from engine.trading.portfolio import snapshot_equity

DAY = 86_400_000
_registered: list[bool] = []


def _cli_status(state: str) -> dict:
    if not _registered:
        _register_all()
        _registered.append(True)
    res = CliRunner().invoke(app, ["--state", str(state), "status", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _fill_store(state: str) -> list[int]:
    """Engine-shaped data over three market days from a speed-60 simulator; returns the snapshot stamps."""
    store = open_store(state)
    settings = dataclasses.replace(Settings())
    sync_instances(store, settings)
    inst = next(iter(settings.strategies))
    wall = [time.time()]
    sim = SimulatedExchange(seed=3, symbols=["BTC/USDT"], speed=60.0, history_days=2, clock=lambda: wall[0])
    now = now_ms()
    with store.begin() as conn:
        conn.execute(insert(engine_status).values(id=1, pid=os.getpid(), host=socket.gethostname(), mode="paper",
                                                  started_at=now - 60_000, heartbeat_at=now + 600_000,  # fresh for the
                                                  version="t", info="{}"))  # whole test on a loaded machine
        conn.execute(insert(positions).values(instance_id=inst, symbol="BTC/USDT", qty=0.05, avg_price=20_000.0,
                                              realized_pnl=0.0, fees=0.0, funding=0.0, updated_at=sim.milliseconds()))
        conn.execute(insert(orders).values(client_order_id="qd-parity", instance_id=inst, symbol="BTC/USDT",
                                           side="buy", type="limit", qty=0.01, price=1.0, reduce_only=0,
                                           status="open", filled_qty=0.0, reason="", created_at=sim.milliseconds(),
                                           updated_at=sim.milliseconds()))
    stamps = []
    for _ in range(16):  # 16 x 4 h of market time per 4 wall minutes
        wall[0] += 240.0
        ts = sim.milliseconds()
        snapshot_equity(store, lambda s: float(sim.fetch_ticker(s)["last"]), ts, settings.lifecycle)
        stamps.append(ts)
    store.dispose()
    return stamps


def test_cli_status_and_console_header_read_identical_numbers(state_url: str) -> None:
    state = state_url
    stamps = _fill_store(state)
    assert stamps[-1] // DAY - stamps[0] // DAY >= 2  # several market days ...
    assert stamps[-1] // DAY != now_ms() // DAY  # ... none of them today's wall-clock day
    cli = _cli_status(state)
    reader = StateReader(state)
    try:
        header = reader.status()
        again = reader.status()  # the cached path (nothing written since) must not move a number either
    finally:
        reader.close()
    for snap in (header, again):
        assert cli["day_pnl"] is not None and snap.day_pnl == cli["day_pnl"]
        assert (snap.equity, snap.drawdown, snap.gross_exposure, snap.net_exposure) == (
            cli["equity"], cli["drawdown"], cli["gross_exposure"], cli["net_exposure"])
        assert (snap.positions, snap.open_orders) == (cli["open_positions"], cli["open_orders"]) == (1, 1)
        assert (snap.state, snap.engine_alive, snap.engine_pid, snap.mode) == (
            cli["trading_state"], cli["engine_alive"], cli["pid"], cli["mode"]) == ("ACTIVE", True, os.getpid(),
                                                                                    "paper")


def test_day_pnl_is_measured_from_the_market_day_open(state_url: str) -> None:
    state = state_url
    stamps = _fill_store(state)
    store = open_store(state)
    with store.connect() as conn:
        from sqlalchemy import text

        curve = dict(conn.execute(text("SELECT ts, equity FROM equity_snapshots WHERE scope='portfolio'")).all())
    store.dispose()
    day_start = stamps[-1] - stamps[-1] % DAY
    open_equity = curve[max(t for t in stamps if t <= day_start)]  # the last close before the market day began
    reader = StateReader(state)
    try:
        assert reader.status().day_pnl == curve[stamps[-1]] - open_equity
    finally:
        reader.close()


def test_a_dead_engine_pid_is_not_alive_for_either_front_end(state_url: str) -> None:
    state = state_url
    _fill_store(state)
    store = open_store(state)
    with store.begin() as conn:  # a fresh heartbeat from a process that no longer exists (kill -9 just now)
        conn.execute(engine_status.update().values(pid=2**22 + 12345))
    store.dispose()
    reader = StateReader(state)
    try:
        assert reader.status().engine_alive is False
    finally:
        reader.close()
    assert _cli_status(state)["engine_alive"] is False
