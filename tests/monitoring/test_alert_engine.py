"""The real engine process and the real watchdog process deliver to a JSON webhook on 127.0.0.1.

- engine start / an operator halt (with its result) / engine stop arrive off-box;
- kill -9 of the engine: the watchdog alerts within its threshold, and again when the engine is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from engine.control.client import ControlClient
from engine.store import open_store
from tests.support.receivers import SmtpReceiver, WebhookReceiver
from tests.support.waiting import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from rt_helpers import REPO, start_engine, stop_engine, write_config  # noqa: E402

THRESHOLD_S = 3.0


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver().start()
    yield rx
    rx.stop()


def _config(folder: Path, url: str, mail_url: str = "") -> Path:
    mail = f', {{ url = "{mail_url}", min_severity = "critical" }}' if mail_url else ""
    return write_config(folder, extra=f"""
[alerts]
channels = [{{ url = "{url}", min_severity = "warning" }}{mail}]
poll_s = 0.1
retry_base_s = 0.2
retry_max_s = 1.0
watchdog_threshold_s = {THRESHOLD_S}
watchdog_poll_s = 0.2
""")


def _start_watchdog(folder: Path, config: Path, state: Path) -> subprocess.Popen:
    err = open(folder / "watchdog.stderr", "ab")  # noqa: SIM115 - closed with the process
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "engine.runtime.watchdog", "--state", str(state), "--config",
                             str(config)], cwd=folder, stdout=err, stderr=err, env=env)


def _has(webhook: WebhookReceiver, needle: str) -> bool:
    return any(needle in t for t in webhook.texts())


@pytest.mark.slow
def test_engine_start_halt_and_stop_arrive_off_box(tmp_path: Path, webhook: WebhookReceiver, report) -> None:
    smtp = SmtpReceiver().start()
    config, state = _config(tmp_path, webhook.url, smtp.url), tmp_path / "state.db"
    proc = start_engine(tmp_path, config, state)
    try:
        wait_for(lambda: _has(webhook, "engine started (paper)"), 60, "the engine start notice")
        store = open_store(state)
        client = ControlClient(store, source="cli", user="alice", heartbeat_timeout_s=3.0)
        t0 = time.monotonic()
        assert client.halt("operator test halt").ok
        wait_for(lambda: _has(webhook, "trading state HALTED"), 5, "the halt notice", interval=0.02)
        t_halt = time.monotonic() - t0
        wait_for(lambda: any("trading state HALTED" in m for m in smtp.messages), 5, "the halt e-mail", interval=0.02)
        t_mail = time.monotonic() - t0
        wait_for(lambda: _has(webhook, "halt done (by cli/alice)"), 5, "the halt result (orders canceled)")
    finally:
        assert stop_engine(proc) == 0
        smtp.stop()
    wait_for(lambda: _has(webhook, "engine stopped (paper)"), 5, "the engine stop notice")
    report("engine halt off-box", {"halt_to_webhook_s": t_halt, "halt_to_smtp_s": t_mail})


@pytest.mark.slow
def test_watchdog_alerts_when_the_engine_is_killed_and_when_it_is_back(tmp_path: Path, webhook: WebhookReceiver,
                                                                       report) -> None:
    config, state = _config(tmp_path, webhook.url), tmp_path / "state.db"
    engine = start_engine(tmp_path, config, state)
    watchdog = None
    try:
        wait_for(lambda: _has(webhook, "engine started"), 60, "the engine start notice")
        watchdog = _start_watchdog(tmp_path, config, state)
        log = tmp_path / "watchdog.stderr"
        wait_for(lambda: "watchdog watching" in log.read_text(), 30, "the watchdog to start watching")
        time.sleep(2 * 0.2)  # a couple of its checks see a live engine first
        assert watchdog.poll() is None, log.read_text()
        assert not _has(webhook, "watchdog.engine_down")
        engine.send_signal(signal.SIGKILL)
        engine.wait()
        t_kill = time.monotonic()
        wait_for(lambda: _has(webhook, "watchdog.engine_down"), THRESHOLD_S + 5, "the watchdog's alert",
                 interval=0.05)
        t_alert = time.monotonic() - t_kill
        text = next(t for t in webhook.texts() if "watchdog.engine_down" in t)
        assert "[CRITICAL]" in text and "engine heartbeat stopped" in text
        engine = start_engine(tmp_path, config, state)
        wait_for(lambda: _has(webhook, "engine is back"), 60, "the engine-back notice")
    finally:
        if watchdog is not None:
            watchdog.send_signal(signal.SIGTERM)
            assert watchdog.wait(15) == 0
        stop_engine(engine)
    assert t_alert <= THRESHOLD_S + 2.0, t_alert  # threshold + one poll + delivery
    report("watchdog after kill -9", {"threshold_s": THRESHOLD_S, "kill_to_webhook_s": t_alert})
