"""A live start that cannot proceed exits non-zero with one line and what to do, never a traceback (issue 13, 1d).

The exchange is pointed at a port on 127.0.0.1 where nothing listens: the real ccxt client fails to connect, exactly
as with no network or an exchange that is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEYS = {"QUANTDESK_API_KEY": "k-5d1e0c93", "QUANTDESK_API_SECRET": "s-0aa7c4e1f2"}


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing listens there


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK")}
    env.update(PYTHONPATH=str(REPO), QUANTDESK__DATA__SOURCE='"ccxt:binance"',
               QUANTDESK__EXCHANGE__BASE_URL=f'"http://127.0.0.1:{_dead_port()}"', **extra)
    return env


def _one_line_no_traceback(out: subprocess.CompletedProcess, logs: bool = False) -> str:
    """The cause line; the CLI prints only it, the engine process also logs (its log goes to stderr by design)."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    if logs:
        lines = [ln for ln in lines if " quantdesk." not in ln]
    assert len(lines) == 1, out.stderr
    for secret in KEYS.values():
        assert secret not in out.stderr + out.stdout
    return lines[0]


@pytest.mark.parametrize("front", ["cli", "engine"])
def test_exchange_unreachable_is_one_line_with_what_to_do(tmp_path, front, state_url):
    if front == "cli":
        argv = [sys.executable, "-c", "from console.cli import main; main()", "--state", state_url,
                "engine", "--live", "--confirm-live"]
    else:
        argv = [sys.executable, "-m", "engine.runtime.main", "--state", state_url, "--live-confirmed"]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path, **KEYS), timeout=90,
                         cwd=tmp_path)
    line = _one_line_no_traceback(out, logs=front == "engine")
    assert "cannot load markets on binance" in line and "check the network" in line


def test_no_keys_names_the_variables_not_values(tmp_path):
    argv = [sys.executable, "-m", "engine.runtime.main", "--state", str(tmp_path / "s.db"), "--live-confirmed"]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path), timeout=90, cwd=tmp_path)
    line = _one_line_no_traceback(out, logs=True)
    assert "QUANTDESK_API_KEY" in line and "QUANTDESK_API_SECRET" in line and "environment" in line


def test_confirm_live_without_live_is_refused(tmp_path):
    argv = [sys.executable, "-c", "from console.cli import main; main()", "--state", str(tmp_path / "s.db"),
            "engine", "--confirm-live"]
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path), timeout=60, cwd=tmp_path)
    assert "--confirm-live only makes sense with --live" in _one_line_no_traceback(out)


def test_a_live_start_rearms_protection_first_and_still_refuses_an_unknown_strategy(tmp_path):
    """The strategy check runs after the re-arm (it imports every strategy module): the engine still exits 2 with
    one config line naming the instance, and protection was re-armed before that."""
    import json
    import sqlite3

    from tests.support.live_desk import engine_env, live_config
    from tests.support.twin import start_twin

    twin = start_twin(tmp_path / "venue.db")
    try:
        cfg = live_config(tmp_path, twin.base_url, extra='[strategies.bad]\nstrategy = "no_such_strategy"\n'
                                                          'symbols = ["BTC/USDT"]\n')
        argv = [sys.executable, "-m", "engine.runtime.main", "--state", str(tmp_path / "state.db"), "--config",
                str(cfg), "--live-confirmed"]
        out = subprocess.run(argv, capture_output=True, text=True, env=engine_env(twin.api_key, twin.api_secret),
                             timeout=90, cwd=tmp_path)
    finally:
        twin.stop()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and " quantdesk." not in ln]
    assert len(lines) == 1 and lines[0].startswith("config error: strategies.bad.strategy: must be one of"), lines
    with sqlite3.connect(tmp_path / "state.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
        details = conn.execute("SELECT details FROM audit_log WHERE action='protection.rearmed'").fetchone()
    assert "protection.rearmed" in actions and "engine.start_timeline" not in actions
    assert "rearmed" in json.loads(details[0])["timeline"]
