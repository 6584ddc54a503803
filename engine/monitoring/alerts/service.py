"""AlertService: what an engine (or the watchdog) starts for off-box alerts, in one object.

Built before anything else at engine start, so a bad channel URL stops the engine with a ConfigError naming the
channel; started once the store is open (dedup window, sender threads with ack escalation and the daily summary as
periodic duties); stopped last, after the 'engine stopped' notice had a moment to go out.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Mapping

from engine.config import Settings
from engine.monitoring.alerts.channels import Channel, build_channels
from engine.monitoring.alerts.escalation import check_escalations
from engine.monitoring.alerts.sender import AlertSender
from engine.monitoring.alerts.summary import send_daily_summary
from engine.store.db import Store
from engine.store.notify import enqueue_event, set_dedup_window

log = logging.getLogger("quantdesk.alerts")


class AlertService:
    """Validated channels plus, once started, the sender threads over one store."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.cfg = settings.alerts
        self.channels: list[Channel] = build_channels(self.cfg, os.environ if environ is None else environ)
        self.sender: AlertSender | None = None
        self.store: Store | None = None

    def start(self, store: Store, *, name: str = "engine", escalate: bool = True, summary: bool = True) -> None:
        """Apply the dedup window and start delivering (with escalation / daily summary when asked)."""
        set_dedup_window(self.cfg.dedup_window_s)
        duties: list[Any] = []
        if escalate:
            duties.append(lambda now: check_escalations(store, self.cfg, now))
        if summary:
            duties.append(lambda now: send_daily_summary(store, self.cfg, now))
        self.store = store
        self.sender = AlertSender(store, self.channels, self.cfg, name=name, duties=duties).start()
        log.info("alerts: %d channel(s): %s", len(self.channels), ", ".join(c.redacted for c in self.channels) or "-")

    def notify(self, kind: str, severity: str, title: str, body: str, values: Mapping[str, Any] | None = None,
               rule: str = "") -> None:
        """Queue a notice that belongs to no alert row (engine start/stop, watchdog) and route it now."""
        if self.store is None:
            raise RuntimeError("AlertService.notify before start()")
        with self.store.begin() as conn:
            enqueue_event(conn, kind, severity, title, body, values, rule=rule)
        if self.sender is not None:
            self.sender.kick()

    def stop(self, flush_s: float = 2.0) -> None:
        """Give pending messages `flush_s` to go out, then stop the threads."""
        if self.sender is None:
            return
        try:
            self.sender.flush(flush_s)
        except Exception:  # noqa: BLE001 - a failing flush must not block shutdown
            log.exception("alert flush at shutdown failed")
        self.sender.stop()
        self.sender = None


def engine_notice(started: bool, mode: str, pid: int | None = None, detail: str = "") -> tuple[str, str]:
    """Title and body of the engine start/stop notice."""
    what = "started" if started else "stopped"
    return (f"engine {what} ({mode})",
            f"engine {what} on {socket.gethostname()} (pid {pid or os.getpid()}, mode {mode}){detail}")
