"""AlertSender: background threads that deliver the outbox, so a slow or dead channel never blocks trading.

One coordinator thread routes new events to channels, queues dedup repeat notices and rate-limit digests, and runs
the periodic duties it is given (ack escalation, daily summary). One worker thread per channel claims due rows and
sends them through apprise, recording every attempt; a failing channel backs off on its own without delaying the
others. After `channel_down_after` consecutive failures the channel raises its own alert once (until it recovers).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from engine.clock import now_ms
from engine.config import AlertsConfig
from engine.monitoring.alerts.channels import Channel, timed_send
from engine.monitoring.alerts.outbox import (claim_due, emit_repeats, make_digests, prune, record_attempt, release,
                                             route_events)
from engine.store.db import Store
from engine.store.notify import dedup_window_ms
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.alerts")
Duty = Callable[[int], object]  # called with now_ms on the coordinator thread
PRUNE_EVERY_MS = 3_600_000


class AlertSender:
    """Routes and delivers the outbox of one store through the configured channels, off the trading threads."""

    def __init__(self, store: Store, channels: list[Channel], cfg: AlertsConfig, *, name: str = "engine",
                 duties: list[Duty] | None = None) -> None:
        self.store = store
        self.channels = channels
        self.cfg = cfg
        self.sender_id = f"{name}:{os.getpid()}"
        self.duties = list(duties or [])
        self._stop = threading.Event()
        self._wake = {ch.index: threading.Event() for ch in channels}
        self._kick = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures = {ch.index: 0 for ch in channels}
        self._down = {ch.index: False for ch in channels}
        self._pruned_at = 0

    def start(self) -> "AlertSender":
        """Start the coordinator and one worker per channel (daemon threads)."""
        self._threads = [threading.Thread(target=self._coordinate, name="alerts-route", daemon=True)]
        self._threads += [threading.Thread(target=self._work, args=(ch,), name=f"alerts-ch{ch.index}", daemon=True)
                          for ch in self.channels]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask every thread to stop and wait briefly (a send in flight is bounded by its channel timeout)."""
        self._stop.set()
        self._kick.set()
        for ev in self._wake.values():
            ev.set()
        for t in self._threads:
            t.join(timeout_s)

    def kick(self) -> None:
        """Route now instead of at the next poll (e.g. right after the engine wrote a start event)."""
        self._kick.set()

    def flush(self, timeout_s: float) -> None:
        """Give pending messages up to `timeout_s` to go out (at shutdown, so 'engine stopped' is delivered)."""
        self.run_once(now_ms())
        for ch in self.channels:
            deadline = now_ms() + int(timeout_s * 1000)
            while now_ms() < deadline and self._deliver(ch, now_ms()):
                pass

    # --- coordinator -------------------------------------------------------------------------------------------
    def run_once(self, now: int) -> int:
        """One routing pass (also used by tests and `alerts test`): route, repeats, digests; returns events routed."""
        routed = route_events(self.store, self.channels, self.cfg, now)
        emit_repeats(self.store, max(dedup_window_ms(), 1), now)
        routed += route_events(self.store, self.channels, self.cfg, now)
        make_digests(self.store, self.channels, self.cfg, now)
        if now - self._pruned_at >= PRUNE_EVERY_MS:
            self._pruned_at = now
            prune(self.store, now)
        for ev in self._wake.values():
            ev.set()
        return routed

    def _coordinate(self) -> None:
        while not self._stop.is_set():
            try:
                now = now_ms()
                self.run_once(now)
                for duty in self.duties:
                    duty(now)
            except Exception:  # noqa: BLE001 - the sender must outlive a busy database or a bad row
                log.exception("alert routing failed; retrying")
            self._kick.wait(self.cfg.poll_s)
            self._kick.clear()

    # --- channel workers ---------------------------------------------------------------------------------------
    def _work(self, ch: Channel) -> None:
        wake = self._wake[ch.index]
        while not self._stop.is_set():
            try:
                busy = self._deliver(ch, now_ms())
            except Exception:  # noqa: BLE001
                log.exception("alert delivery on channel %s failed; retrying", ch.index)
                busy = False
            if not busy:
                wake.wait(self.cfg.poll_s)
                wake.clear()

    def _deliver(self, ch: Channel, now: int) -> bool:
        """Send what is due on one channel; True when something was attempted."""
        rows = claim_due(self.store, ch.index, self.sender_id, now)
        for i, row in enumerate(rows):
            if self._stop.is_set():
                release(self.store, [r.id for r in rows[i:]], self.sender_id)
                break
            error, elapsed = timed_send(ch, row.title, row.body, row.severity)
            record_attempt(self.store, row, error, elapsed, self.sender_id, self.cfg, now_ms())
            self._health(ch, error)
            if error is not None:  # this channel is failing: the rest wait for the next pass, not a burst of timeouts
                release(self.store, [r.id for r in rows[i + 1:]], self.sender_id)
                return False
        return bool(rows)

    def _health(self, ch: Channel, error: str | None) -> None:
        """Count consecutive failures; raise the channel's own alert once when it goes down, note recovery."""
        if error is None:
            if self._down[ch.index]:
                self._down[ch.index] = False
                raise_alert(self.store, "info", "alerts.channel_up", f"alert channel {ch.index} ({ch.redacted}) "
                            "delivers again", {"channel": ch.index}, source="alerts")
            self._failures[ch.index] = 0
            return
        self._failures[ch.index] += 1
        log.warning("alert channel %s (%s): delivery failed: %s", ch.index, ch.redacted, error)
        if self._failures[ch.index] >= self.cfg.channel_down_after and not self._down[ch.index]:
            self._down[ch.index] = True
            raise_alert(self.store, "warning", "alerts.channel_down",
                        f"alert channel {ch.index} ({ch.redacted}) is undeliverable after "
                        f"{self._failures[ch.index]} attempts: {error}"[:500],
                        {"channel": ch.index, "error": error[:300]}, source="alerts")
