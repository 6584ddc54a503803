"""`quantdesk venue serve` as a real process (URL first, keys from the environment, not in the process list) and
`quantdesk venue status [--json]` on its books."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from console.cli import _register_all, app
from tests.support.twin import twin_exchange

KEY, SECRET = "K" * 64, "S" * 64


def start_serve(state: Path, *extra: str, env_keys: bool = True) -> tuple[subprocess.Popen, str, list[str]]:
    """Run `quantdesk venue serve` on a free port; returns the process, its base URL and the other stdout lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if env_keys:
        env.update(QUANTDESK_VENUE_API_KEY=KEY, QUANTDESK_VENUE_API_SECRET=SECRET)
    proc = subprocess.Popen([sys.executable, "-c", "from console.cli import main; main()", "venue", "serve",
                             "--port", "0", "--state", str(state), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    lines = [proc.stdout.readline().strip() for _ in range(0 if env_keys else 2)]
    return proc, url, lines


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server and wait for it."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def _cli(*args: str):
    _register_all()
    return CliRunner().invoke(app, list(args))


def test_serve_prints_url_first_trades_and_status_reports_the_books(tmp_path):
    state = tmp_path / "venue.db"
    proc, url, _ = start_serve(state, "--seed", "11")
    try:
        assert url.startswith("http://127.0.0.1:")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert SECRET not in cmdline  # keys came from the environment
        ex = twin_exchange(url, KEY, SECRET)
        ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "cli-1"})
        bid = ex.fetch_order_book("BTC/USDT")["bids"][0][0]
        ex.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2), params={"newClientOrderId": "cli-2"})
        ex.create_order("ETH/USDT:USDT", "market", "sell", 0.2)
    finally:
        stop(proc)
    assert proc.returncode == 0
    res = _cli("venue", "status", "--state", str(state), "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert set(body) >= {"balances", "positions", "open_orders", "order_count"}
    assert body["order_count"] == 3 and body["balances"]["BTC"] == 0.00999
    assert body["positions"] == [{"symbol": "ETH/USDT:USDT", "qty": -0.2,
                                  "entry_price": body["positions"][0]["entry_price"], "leverage": 20}]
    assert [o["client_order_id"] for o in body["open_orders"]] == ["cli-2"]
    text = _cli("venue", "status", "--state", str(state))
    assert text.exit_code == 0 and "open orders: 1" in text.output and "ETH/USDT:USDT -0.2" in text.output


def test_serve_generates_and_prints_a_key_pair_and_books_survive_a_restart(tmp_path):
    state = tmp_path / "venue.db"
    proc, url, lines = start_serve(state, env_keys=False)
    try:
        key, secret = lines[0].removeprefix("api key: "), lines[1].removeprefix("api secret: ")
        assert len(key) == 64 and len(secret) == 64
        twin_exchange(url, key, secret).create_order("SOL/USDT", "market", "buy", 1.0)
    finally:
        stop(proc)
    proc, url, _ = start_serve(state)  # same books, other keys
    try:
        bal = twin_exchange(url, KEY, SECRET).fetch_balance()
        assert bal["SOL"]["total"] == 0.999
    finally:
        stop(proc)


def test_bad_input_is_one_clear_line(tmp_path):
    res = _cli("venue", "status", "--state", str(tmp_path / "nope.db"))
    assert res.exit_code == 2 and "no such file" in res.output and "Traceback" not in res.output
    bad = tmp_path / "faults.toml"
    bad.write_text("latency = 5\n")
    res = _cli("venue", "serve", "--state", str(tmp_path / "v.db"), "--faults", str(bad))
    assert res.exit_code == 2 and "faults.latency: unknown fault" in res.output
    res = _cli("venue", "serve", "--api-key", KEY)
    assert res.exit_code == 2 and "give both an API key and a secret" in res.output
