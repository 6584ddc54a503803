"""Acknowledgement and escalation (short timings), the `quantdesk alerts` CLI, and channel configuration errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.config import AlertChannelConfig, AlertsConfig, ConfigError, load_settings
from engine.monitoring.alerts.channels import build_channels
from engine.monitoring.alerts.escalation import check_escalations
from engine.monitoring.alerts.sender import AlertSender
from engine.risk.trading_state import TradingState, get_state
from engine.store.ops import ack_alert, get_alert, raise_alert
from engine.store.schema import alert_outbox, audit_log
from tests.support.receivers import WebhookReceiver
from tests.support.waiting import wait_for


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver().start()
    yield rx
    rx.stop()


def _audit(store, action: str) -> list[dict]:
    with store.connect() as conn:
        return [json.loads(r[0]) for r in conn.execute(select(audit_log.c.details).where(audit_log.c.action == action))]


def test_unacknowledged_critical_escalates_reducing_then_halted(store, webhook) -> None:
    cfg = AlertsConfig(channels=(AlertChannelConfig(webhook.url, "warning"),), poll_s=0.05, ack_timeout_s=0.6,
                       halt_after_s=0.6, retry_base_s=0.1)
    sender = AlertSender(store, build_channels(cfg, {}), cfg,
                         duties=[lambda now: check_escalations(store, cfg, now)]).start()
    try:
        t0 = time.monotonic()
        alert_id = raise_alert(store, "critical", "recon.mismatch", "BTC/USDT: exchange holds 0.5", {})
        wait_for(lambda: get_state(store).state is TradingState.REDUCING, 5, "REDUCING after the ack timeout",
                 interval=0.02)
        t_reduce = time.monotonic() - t0
        wait_for(lambda: get_state(store).state is TradingState.HALTED, 5, "HALTED after the second period",
                 interval=0.02)
        t_halt = time.monotonic() - t0
        wait_for(lambda: sum("escalation: desk ->" in t for t in webhook.texts()) == 2, 5, "both escalation notices")
    finally:
        sender.stop()
    assert 0.5 <= t_reduce < 2.5 and t_reduce + 0.5 <= t_halt < 5.0, (t_reduce, t_halt)
    steps = _audit(store, "alert.escalated")
    assert [(s["step"], s["to"]) for s in steps] == [(1, "REDUCING"), (2, "HALTED")]
    assert all(s["alert_id"] == alert_id for s in steps)
    texts = webhook.texts()
    assert any(f"quantdesk alerts ack {alert_id}" in t and "HALTED in 0.6s unless acknowledged" in t for t in texts)
    assert any("trading state REDUCING" in t and "escalation: critical alert" in t for t in texts)
    assert get_state(store).changed_by == "engine"


def test_acknowledging_stops_the_escalation(store) -> None:
    cfg = AlertsConfig(ack_timeout_s=0.2, halt_after_s=0.2)
    alert_id = raise_alert(store, "critical", "recon.mismatch", "ETH mismatch", {})
    time.sleep(0.25)
    now = int(time.time() * 1000)
    assert [e.target for e in check_escalations(store, cfg, now)] == [TradingState.REDUCING]
    assert check_escalations(store, cfg, now) == []  # a step happens once
    assert ack_alert(store, alert_id, "alice", source="cli")
    assert check_escalations(store, cfg, now + 10_000) == []
    assert get_state(store).state is TradingState.REDUCING  # acknowledging never loosens the desk


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None, config: str = ""):
    from console.cli import _register_all, app

    _register_all()
    cfg = tmp_path / "quantdesk.toml"
    cfg.write_text(config)
    return CliRunner().invoke(app, ["--config", str(cfg), "--state", str(tmp_path / "state.db"), *args],
                              env=env or {})


def test_cli_ack_says_who_and_when_when_already_acked(tmp_path: Path, state_path: Path, store) -> None:
    alert_id = raise_alert(store, "critical", "recon.mismatch", "SOL mismatch", {})
    first = _cli(tmp_path, "alerts", "ack", str(alert_id))
    assert first.exit_code == 0, first.output
    assert "acknowledged" in first.output
    acked = get_alert(store, alert_id)
    assert acked is not None and acked.acked and acked.acked_by
    again = _cli(tmp_path, "alerts", "ack", str(alert_id))
    assert again.exit_code == 1 and f"already acknowledged by {acked.acked_by} at" in again.output
    missing = _cli(tmp_path, "alerts", "ack", "9999")
    assert missing.exit_code == 1 and "no alert #9999" in missing.output
    for _ in range(3):
        raise_alert(store, "warning", "job.error", "job pull failed", {})
    listed = _cli(tmp_path, "alerts", "list")
    assert listed.exit_code == 0 and "x3" in listed.output and "job pull failed" in listed.output


def test_cli_alerts_test_reports_each_channel(tmp_path: Path, store, webhook) -> None:
    down = WebhookReceiver()  # never started: connection refused
    config = f"""[alerts]
channels = [{{ url = "{webhook.url}", min_severity = "critical" }}, {{ url = "{down.url}" }}]
send_timeout_s = 2.0
"""
    res = _cli(tmp_path, "alerts", "test", config=config)
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("[0] json://127.0.0.1") and "sent in" in lines[0]
    assert lines[1].startswith("[1] json://127.0.0.1") and "FAILED" in lines[1]
    assert any("channel 0 works" in t for t in webhook.texts())
    one = _cli(tmp_path, "alerts", "test", "--channel", "0", config=config)
    assert one.exit_code == 0 and len(one.output.strip().splitlines()) == 1
    bad = _cli(tmp_path, "alerts", "test", "--channel", "5", config=config)
    assert bad.exit_code == 2 and "no channel 5" in bad.output
    with store.connect() as conn:
        stored = [r[0] for r in conn.execute(select(alert_outbox.c.channel_url))]
    assert len(stored) == 3


@pytest.mark.parametrize("url,needle", [
    ("nosuch://host/x", "alerts.channels[1].url: unknown channel type nosuch://"),
    ("json://", "alerts.channels[1].url: malformed json:// URL"),
    ("tgram://", "alerts.channels[1].url: malformed tgram:// URL"),
    ("just-text", "alerts.channels[1].url: not a URL"),
    ("json://host/${QD_MISSING_TOKEN}", "alerts.channels[1].url: environment variable QD_MISSING_TOKEN is not set"),
])
def test_bad_channel_url_names_index_and_problem(url: str, needle: str) -> None:
    cfg = AlertsConfig(channels=(AlertChannelConfig("json://127.0.0.1:9/ok"), AlertChannelConfig(url)))
    with pytest.raises(ConfigError) as err:
        build_channels(cfg, {})
    assert needle in str(err.value)


@pytest.mark.parametrize("detach", [False, True])
def test_engine_refuses_to_start_with_a_bad_channel(tmp_path: Path, capsys, detach: bool) -> None:
    from console.cli import main

    cfg = tmp_path / "quantdesk.toml"
    cfg.write_text('[alerts]\nchannels = [{ url = "json://127.0.0.1:9/ok" }, { url = "nosuch://x" }]\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(cfg), "--state", str(tmp_path / "state.db"), "engine", *(["--detach"] if detach else [])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip() == ("config error: alerts.channels[1].url: unknown channel type nosuch:// (apprise supports "
                           "e.g. tgram, slack, discord, ntfy, mailto, json, form; see the apprise wiki)")
    assert not (tmp_path / "state.db").exists()  # refused before anything was opened


def test_secrets_from_env_are_expanded_and_never_stored_or_printed(tmp_path: Path, store, webhook) -> None:
    secret = "s3cr3t-T0ken-value"
    url = f"json://user:${{QD_HOOK_PASS}}@127.0.0.1:{webhook.port}/hook"
    cfg = AlertsConfig(channels=(AlertChannelConfig(url, "info"),), poll_s=0.05)
    channels = build_channels(cfg, {"QD_HOOK_PASS": secret})
    assert secret not in repr(channels) and secret not in channels[0].redacted
    sender = AlertSender(store, channels, cfg).start()
    try:
        raise_alert(store, "warning", "drift.twin", "drift 40 bps", {})
        wait_for(lambda: webhook.texts(), 5, "delivery with the expanded secret")
    finally:
        sender.stop()
    assert store.path is not None and secret.encode() not in store.path.read_bytes()
    wal = Path(f"{store.path}-wal")
    assert not wal.exists() or secret.encode() not in wal.read_bytes()
    config = f'[alerts]\nchannels = [{{ url = "{url}" }}]\n'
    res = _cli(tmp_path, "alerts", "test", env={"QD_HOOK_PASS": secret}, config=config)
    assert res.exit_code == 0 and secret not in res.output


def test_config_rejects_bad_alert_values(tmp_path: Path) -> None:
    cases = {'channels = [{ url = "json://h/x", min_severity = "loud" }]': "alerts.channels[0].min_severity",
             "rate_limit_count = 0": "alerts.rate_limit_count", 'daily_summary_at = "25:00"': "alerts.daily_summary_at",
             "ack_timeout_s = -1": "alerts.ack_timeout_s", "bogus = 1": "alerts.bogus"}
    for body, key in cases.items():
        path = tmp_path / "q.toml"
        path.write_text(f"[alerts]\n{body}\n")
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            load_settings(path, environ={})


def test_a_repeating_merge_key_alert_keeps_its_first_time_and_still_escalates(store) -> None:
    cfg = AlertsConfig(ack_timeout_s=0.3, halt_after_s=0.0)
    first = raise_alert(store, "critical", "stream.down", "BTC/USDT stream down (1)", {}, merge_key="BTC/USDT")
    for i in range(2, 5):  # keeps failing, with a different message each time
        time.sleep(0.1)
        assert raise_alert(store, "critical", "stream.down", f"BTC/USDT stream down ({i})", {},
                           merge_key="BTC/USDT") == first
    alert = get_alert(store, first)
    assert alert is not None and alert.count == 4 and alert.message.endswith("(4)")
    assert alert.last_ts is not None and alert.last_ts - alert.ts >= 250  # ts stays the first time
    assert [e.target for e in check_escalations(store, cfg, int(time.time() * 1000))] == [TradingState.REDUCING]
