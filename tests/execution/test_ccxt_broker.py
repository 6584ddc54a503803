"""CcxtBroker on a real ccxt.binance instance whose `fetch` replays recorded Binance responses (no network)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import ccxt
import pytest

from engine.execution.ccxt_broker import EXTERNAL_INSTANCE, CcxtBroker
from engine.execution.exchange_client import check_env_keys, exchange_from_env
from engine.execution.orders import (OrderBlocked, OrderRequest, check_positions_match_fills, get_order,
                                     load_positions, position_qty)
from engine.risk.trading_state import TradingState, set_state
from engine.store.ops import list_alerts
from engine.store.schema import fills
from tests.support.ccxt_replay import RECORDINGS, install_replay

KEY, SECRET = "test-key-7f3a91c2", "test-secret-b84d02e6aa"
ENV = {"QUANTDESK_API_KEY": KEY, "QUANTDESK_API_SECRET": SECRET}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(store):
    exchange = exchange_from_env("binance", ENV)
    replay = install_replay(exchange, recordings=(RECORDINGS / "binance", RECORDINGS / "binance" / "orders"))
    broker = CcxtBroker(store, exchange, max_retries=3, symbols=["BTC/USDT"], sleep=lambda s: None)
    return broker, replay


def _req(coid, side="buy", qty=0.01, **kw):
    return OrderRequest(instance_id="qm", symbol="BTC/USDT", side=side, qty=qty, client_order_id=coid, **kw)


def _fills(store, coid):
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(fills.select().where(fills.c.client_order_id == coid)).mappings()]


def test_create_market_order_records_fills_through_the_real_parser(store, live):
    broker, replay = live
    assert isinstance(broker.exchange, ccxt.binance)
    order = broker.submit(_req("qd-mkt-1"))
    assert order["status"] == "filled" and order["exchange_order_id"] == "37193840101"
    (post,) = replay.calls_to("/api/v3/order")
    assert post.method == "POST" and post.params["newClientOrderId"] == "qd-mkt-1"
    assert post.params["type"] == "MARKET" and post.params["side"] == "BUY"
    (f,) = _fills(store, "qd-mkt-1")
    assert f["qty"] == pytest.approx(0.01) and f["price"] == pytest.approx(42415.03)
    assert f["fee"] == pytest.approx(0.00001 * 42415.03)  # commission in BTC, converted to USDT
    assert "3325510001" in f["fill_id"]  # fill ids come from the exchange's trade ids
    # the commission was paid in BTC: the account holds 0.01 - 0.00001, and so does the sub-ledger
    assert position_qty(store, "qm", "BTC/USDT") == pytest.approx(0.00999) and f["fee_base"] == pytest.approx(0.00001)
    again = broker.submit(_req("qd-mkt-1"))  # a retried submit of a known id never reaches the exchange
    assert again["id"] == order["id"] and len(replay.calls_to("/api/v3/order")) == 1


def test_limit_order_partial_fills_then_cancel(store, live):
    broker, replay = live
    order = broker.submit(_req("qd-lmt-1", qty=0.02, type="limit", price=42000.0))
    assert order["status"] == "open" and order["filled_qty"] == 0
    assert broker.process() == 1
    assert get_order(store, "qd-lmt-1")["status"] == "partial"
    assert broker.process() == 1
    assert get_order(store, "qd-lmt-1")["filled_qty"] == pytest.approx(0.012)
    assert broker.cancel("qd-lmt-1") is True
    row = get_order(store, "qd-lmt-1")
    assert row["status"] == "canceled" and row["filled_qty"] == pytest.approx(0.012)
    parts = _fills(store, "qd-lmt-1")
    assert [p["qty"] for p in parts] == pytest.approx([0.008, 0.004])
    assert all(p["price"] == pytest.approx(42000.0) for p in parts)
    delete = [c for c in replay.calls if c.method == "DELETE"]
    assert delete and delete[0].params["origClientOrderId"] == "qd-lmt-1"
    assert check_positions_match_fills(store) == []


def test_insufficient_funds_rejects_and_raises_a_critical_alert(store, live):
    broker, _ = live
    order = broker.submit(_req("qd-poor-1", qty=5.0))
    assert order["status"] == "rejected" and "InsufficientFunds" in order["reason"]
    alert = list_alerts(store)[0]
    assert alert.rule == "broker.InsufficientFunds" and alert.severity == "critical"
    assert load_positions(store) == []


def test_invalid_order_is_rejected_with_an_alert(store, live):
    broker, _ = live
    order = broker.submit(_req("qd-lot-1", qty=0.000001))
    assert order["status"] == "rejected" and "InvalidOrder" in order["reason"]
    assert list_alerts(store)[0].rule == "broker.InvalidOrder"


def test_timeout_after_the_exchange_accepted_does_not_duplicate(store, live):
    broker, replay = live
    order = broker.submit(_req("qd-net-1", side="sell", qty=0.005))
    posts = [c for c in replay.calls_to("/api/v3/order") if c.method == "POST"]
    assert len(posts) == 1  # the retry looked the client id up instead of sending again
    assert order["status"] == "filled" and order["exchange_order_id"] == "37193840303"
    assert position_qty(store, "qm", "BTC/USDT") == pytest.approx(-0.005)
    assert any(a.rule == "broker.network" for a in list_alerts(store))


def test_network_error_before_the_exchange_saw_it_resends_with_the_same_client_id(store, live):
    broker, replay = live
    order = broker.submit(_req("qd-net-2", qty=0.003))
    posts = [c for c in replay.calls_to("/api/v3/order") if c.method == "POST"]
    gets = [c for c in replay.calls_to("/api/v3/order") if c.method == "GET"]
    assert len(posts) == 2 and {p.params["newClientOrderId"] for p in posts} == {"qd-net-2"}
    assert len(gets) == 1  # checked before resending
    assert order["status"] == "filled" and len(_fills(store, "qd-net-2")) == 1
    assert position_qty(store, "qm", "BTC/USDT") == pytest.approx(0.003)


def test_reconcile_adopts_a_position_found_only_on_the_exchange(store, live):
    broker, _ = live
    summary = broker.recover()
    assert summary["adopted"] == [{"symbol": "BTC/USDT", "exchange": 0.25, "state_db": 0.0, "adopted": 0.25}]
    (pos,) = load_positions(store)
    assert pos["instance_id"] == EXTERNAL_INSTANCE and pos["qty"] == pytest.approx(0.25)
    assert pos["avg_price"] == pytest.approx((42412.34 + 42412.35) / 2, rel=1e-4)
    assert check_positions_match_fills(store) == []
    alert = [a for a in list_alerts(store) if a.rule == "recon.mismatch"][0]
    assert alert.severity == "critical" and alert.values["adopted"] == 0.25
    assert broker.reconcile()["adopted"] == []  # now explained: nothing more to adopt


def test_state_gate_and_capital_cap_run_before_any_request(store, live):
    broker, replay = live
    set_state(store, TradingState.HALTED, "test", "cli", "tester")
    with pytest.raises(OrderBlocked, match="HALTED"):
        broker.submit(_req("qd-mkt-1"))
    assert replay.calls_to("/api/v3/order") == [] and get_order(store, "qd-mkt-1") is None
    set_state(store, TradingState.ACTIVE, "test", "cli", "tester", confirmed=True)
    broker.capital_caps = {"qm": 100.0}
    with pytest.raises(OrderBlocked, match="capital cap"):
        broker.submit(_req("qd-mkt-1"))
    assert replay.calls_to("/api/v3/order") == []


def test_keys_come_from_the_environment_and_never_reach_state_db_or_logs(store, live, caplog, state_path):
    caplog.set_level(logging.DEBUG)
    broker, _ = live
    broker.submit(_req("qd-mkt-1"))
    broker.submit(_req("qd-poor-1", qty=5.0))
    broker.recover()
    with pytest.raises(ValueError, match="QUANTDESK_API_SECRET"):
        check_env_keys({"QUANTDESK_API_KEY": KEY})
    store.dispose()
    blob = b"".join(p.read_bytes() for p in state_path.parent.glob("state.db*"))
    assert KEY.encode() not in blob and SECRET.encode() not in blob
    assert KEY not in caplog.text and SECRET not in caplog.text


def test_live_cli_needs_keys_before_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK")}
    env["PYTHONPATH"] = str(REPO)
    base = [sys.executable, "-c", "from console.cli import main; main()", "--state", str(tmp_path / "s.db"),
            "engine", "--live"]
    out = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60, input="")
    assert out.returncode == 2 and "QUANTDESK_API_KEY" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db.engine.pid").exists()


def test_an_order_recorded_but_unsent_stays_unsent_when_restarted_into_halted(store, live):
    from engine.execution.orders import insert_order

    broker, replay = live
    insert_order(store, _req("qd-net-2", qty=0.003), broker.exchange.milliseconds(),
                 venue="exchange")  # crash before the POST
    set_state(store, TradingState.HALTED, "operator", "cli", "tester")
    broker.process()  # the exchange does not know the id (-2013), and HALTED forbids sending it now
    row = get_order(store, "qd-net-2")
    assert row["status"] == "canceled" and "not sent after restart" in row["reason"]
    assert [c.method for c in replay.calls_to("/api/v3/order")] == ["GET"]
