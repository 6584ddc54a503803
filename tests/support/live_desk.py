"""A live desk on the exchange twin for tests: config, a promoted live-small instance, engine processes.

`live_config(folder, twin, ...)` writes a quantdesk.toml whose market data and live broker both talk to the twin
(`[exchange] base_url`), with two instances: `pp` (paper) and `ls` (promoted to live-small through the real gate
report with gates lowered by config and a seeded paper record). Keys reach the engine only through its environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from tests.support.backends import raw
from tests.support.desk_strategies import CALM_MARKET_TRIGGERS, install

REPO = Path(__file__).resolve().parents[2]
LOWERED_GATES = """
[lifecycle]
min_paper_days = 0.0
min_paper_trades = 0
min_dsr = 0.0
max_drift_bps = 1000000.0
live_small_fraction = 0.1
"""


def live_config(folder: Path, base_url: str, *, speed: float = 60.0, extra: str = "") -> Path:
    """A fast live config on the twin: one paper and one (to-be-promoted) live-small instance on BTC/USDT."""
    path = folder / "quantdesk.toml"
    install(folder, "rhythms")  # the engine runs in `folder`: discovery finds the strategy there
    path.write_text(f"""
[data]
source = "ccxt:binance"
symbols = ["BTC/USDT"]
timeframes = ["1m"]
[exchange]
base_url = "{base_url}"
[simulator]
speed = {speed}
[runtime]
equity_interval_s = 1.0
monitor_interval_s = 2.0
heartbeat_interval_s = 0.5
heartbeat_timeout_s = 3.0
command_poll_ms = 50
[ml]
train_at_start = false
[execution]
rebalance_band = 0.0
min_order_notional = 1.0
reconcile_interval_s = 2.0
flatten_round_wait_s = 0.2
{LOWERED_GATES}
{CALM_MARKET_TRIGGERS}
[strategies.pp]
strategy = "steady_long"
symbols = ["BTC/USDT"]
capital = 20000.0
[strategies.ls]
strategy = "steady_long"
symbols = ["BTC/USDT"]
capital = 20000.0
stage = "live"
{extra}
""")
    return path


def promote_live_small(state: Path | str, config: Path) -> Any:
    """Seed state.db from the config and promote `ls` to live-small through the real gate report (gates lowered)."""
    from engine.clock import now_ms
    from engine.config import load_settings, settings_with
    from engine.store import open_store
    from engine.store.schema import equity_snapshots, twin_trades
    from engine.trading import lifecycle

    from engine.config_rules import state_target

    settings = settings_with(load_settings(config), store=state_target(str(state)))
    store = open_store(state)
    lifecycle.sync_instances(store, settings)  # config says live: seeded at paper
    t0 = now_ms() + 1
    with store.begin() as conn:
        conn.execute(insert(equity_snapshots), [
            {"ts": t0 + i, "scope": "ls", "equity": 20_000.0 + 10 * i + (i % 2), "cash": 20_000.0,
             "gross_exposure": 0.0, "net_exposure": 0.0, "unrealized_pnl": 0.0, "realized_pnl": 0.0}
            for i in range(5)])
        conn.execute(insert(twin_trades).values(ts=t0, instance_id="ls", symbol="BTC/USDT", client_order_id="seed",
                                                live_price=1.0, twin_price=1.0, live_fee=0.0, twin_fee=0.0,
                                                slippage_bps=0.0, drift_bps=0.0))
    report = lifecycle.promote(store, "ls", settings.lifecycle, confirm=True, source="cli", user="rehearsal")
    assert report.to_stage == "live-small"
    return store


def engine_env(key: str, secret: str) -> dict[str, str]:
    """The engine's environment: the twin's keys in the two variables, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK")}
    env.update(PYTHONPATH=str(REPO), QUANTDESK_API_KEY=key, QUANTDESK_API_SECRET=secret)
    return env


def start_live_engine(folder: Path, config: Path, state: Path | str, env: dict[str, str]) -> subprocess.Popen:
    """`python -m engine.runtime.main --live-confirmed` as a real process, logging to folder/engine.stderr."""
    err = open(folder / "engine.stderr", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "engine.runtime.main", "--state", str(state), "--config",
                             str(config), "--live-confirmed"], cwd=folder, stdout=err, stderr=err, env=env)


def stop_engine(proc: subprocess.Popen) -> None:
    """SIGTERM a live engine and wait for it (kill it if it does not stop within 30 s)."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def assert_books_equal_twin(store: Any, twin: Any, symbol: str = "BTC/USDT") -> list[dict[str, Any]]:
    """The exchange invariants of a stopped live desk: no client id on the twin twice, every twin fill in state.db
    exactly once (per order: filled == filled), positions == sum of fills, and the exchange-venue sub-ledgers plus
    adopted external holdings == the account's base balance (within dust). Returns the twin's orders."""
    import pytest

    from engine.execution.orders import check_positions_match_fills

    ex = twin.exchange()
    ex.load_markets()
    on_twin = twin_orders(ex, symbol)
    ids = [o["clientOrderId"] for o in on_twin]
    assert len(ids) == len(set(ids)), "a client order id reached the exchange twice"
    with raw(store) as conn:
        local = dict(conn.execute("SELECT client_order_id, filled_qty FROM orders WHERE venue='exchange' "
                                  "AND client_order_id NOT LIKE 'qd-recon-%'").fetchall())
        held = conn.execute("SELECT COALESCE(SUM(qty), 0) FROM positions WHERE instance_id IN (SELECT DISTINCT "
                            "instance_id FROM orders WHERE venue='exchange') AND symbol=?", (symbol,)).fetchone()[0]
    for o in on_twin:
        assert local.get(o["clientOrderId"]) == pytest.approx(float(o["filled"] or 0.0), abs=1e-12), o
    assert check_positions_match_fills(store) == []
    base = ex.markets[symbol]["base"]
    total = float(ex.fetch_balance()["total"].get(base) or 0.0)
    dust = max(ex.markets[symbol]["limits"]["amount"]["min"] or 0.0, ex.markets[symbol]["precision"]["amount"])
    assert held == pytest.approx(total, abs=dust), (held, total)
    return on_twin


def twin_orders(ex: Any, symbol: str) -> list[dict[str, Any]]:
    """Every order of a symbol on the twin (allOrders paged by time, 1000 a page, deduplicated by order id)."""
    out: dict[str, dict[str, Any]] = {}
    since = 0
    while True:
        page = ex.fetch_orders(symbol, since, 1000)
        new = [o for o in page if o["id"] not in out]
        out.update((o["id"], o) for o in page)
        if len(page) < 1000 or not new:
            return list(out.values())
        since = max(int(o["timestamp"] or 0) for o in page)
