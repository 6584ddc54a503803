"""`quantdesk watchdog` / `python -m engine.runtime.watchdog`: a dead-man switch over the engine's heartbeat.

A small separate process (one per state store, flock()ed pid file like the engine's). Every `alerts.watchdog_poll_s`
it reads engine_status: when the heartbeat is older than `alerts.watchdog_threshold_s` and the engine did not say it
stopped, it raises a critical `watchdog.engine_down` alert, delivered by its own sender over the same outbox (the
engine is not there to send it), and -- when `alerts.watchdog_cancel_orders` is set and the engine ran live -- cancels
resting non-protective orders on the exchange through the engine's own broker code (CcxtBroker.cancel_resting). When
the heartbeat is fresh again it says the engine is back.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from sqlalchemy import select

from engine.clock import now_ms
from engine.config import ConfigError, Settings, load_settings, settings_with
from engine.monitoring.alerts.service import AlertService
from engine.runtime.lockfile import EngineLock, EngineLockedError, lock_path
from engine.store.db import Store
from engine.store.ops import raise_alert
from engine.store.schema import engine_status

log = logging.getLogger("quantdesk.watchdog")


def watchdog_lock_path(settings: Settings) -> Path:
    """The watchdog's pid/lock file, beside the engine's."""
    engine_lock = lock_path(settings)
    return engine_lock.with_name(f"{engine_lock.stem}.watchdog{engine_lock.suffix}")


@dataclass
class Beat:
    """What engine_status says about the engine."""

    age_s: float | None  # None: no engine ever ran on this store
    pid: int | None
    mode: str
    stopped: bool


def read_beat(store: Store, now: int, name: str = "main") -> Beat:
    """Engine `name`'s last heartbeat age, pid, mode and whether it stopped cleanly (one watchdog per engine name:
    its lock file sits beside that engine's)."""
    with store.connect() as conn:
        row = conn.execute(select(engine_status).where(engine_status.c.name == name)).mappings().first()
    if row is None:
        return Beat(None, None, "unknown", False)
    info = json.loads(row["info"] or "{}")
    return Beat((now - int(row["heartbeat_at"])) / 1000, int(row["pid"]), str(row["mode"]), bool(info.get("stopped")))


class Watchdog:
    """Watches one store's engine heartbeat and alerts (and optionally cancels resting orders) when it stops."""

    def __init__(self, settings: Settings, store: Store, alerting: AlertService, *,
                 environ: Mapping[str, str] | None = None, broker_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.cfg = settings.alerts
        self.store = store
        self.alerting = alerting
        self.environ = dict(os.environ if environ is None else environ)
        self.broker_factory = broker_factory or self._live_broker
        self.down_since: int | None = None
        self.stop_event = threading.Event()

    def check(self, now: int | None = None) -> str | None:
        """One look at the heartbeat; returns 'down' or 'back' when the engine's state changed, else None."""
        now = now_ms() if now is None else now
        beat = read_beat(self.store, now, self.settings.engine.name)
        if beat.age_s is None:
            return None
        stale = beat.age_s > self.cfg.watchdog_threshold_s
        if self.down_since is None and stale and not beat.stopped:
            self.down_since = now
            self._engine_down(beat)
            return "down"
        if self.down_since is not None and not stale and not beat.stopped:
            gone_s = (now - self.down_since) / 1000 + self.cfg.watchdog_threshold_s
            self.down_since = None
            self.alerting.notify("watchdog", "warning", "engine is back",
                                 f"the engine heartbeats again (pid {beat.pid}, mode {beat.mode}) after about "
                                 f"{gone_s:.0f}s without one", {"pid": beat.pid, "down_s": round(gone_s, 1)},
                                 rule="watchdog.engine_up")
            return "back"
        return None

    def _engine_down(self, beat: Beat) -> None:
        """Alert, then (when configured and the engine traded live) cancel resting non-protective orders."""
        result: dict[str, Any] = {}
        if self.cfg.watchdog_cancel_orders and beat.mode == "live":
            try:
                result = self.broker_factory().cancel_resting()
            except Exception as exc:  # noqa: BLE001 - the alert must go out even when the exchange is unreachable
                result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        note = ""
        if result:
            note = (f"; canceled {len(result.get('canceled', []))} resting order(s), kept "
                    f"{len(result.get('kept_protective', []))} protective" if "error" not in result
                    else f"; cancel failed: {result['error']}")
        raise_alert(self.store, "critical", "watchdog.engine_down",
                    f"engine heartbeat stopped {beat.age_s:.0f}s ago (pid {beat.pid}, mode {beat.mode}){note}",
                    {"age_s": round(beat.age_s or 0.0, 1), "pid": beat.pid, "mode": beat.mode, **result},
                    source="watchdog")
        if self.alerting.sender is not None:
            self.alerting.sender.kick()

    def _live_broker(self) -> Any:
        """The engine's exchange broker, connected as the live engine connects it (keys from the environment,
        `[exchange] base_url` honoured, markets loaded)."""
        from engine.execution.ccxt_broker import CcxtBroker
        from engine.execution.live_start import connect_exchange, live_symbols

        exchange = connect_exchange(self.settings, self.environ)
        return CcxtBroker(self.store, exchange, max_retries=self.settings.execution.max_retries,
                          symbols=live_symbols(self.settings))

    def run(self) -> int:
        """Check until SIGTERM/SIGINT; returns the exit code."""
        log.info("watchdog watching %s (threshold %.1fs)", self.settings.store_url(), self.cfg.watchdog_threshold_s)
        while not self.stop_event.is_set():
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a busy database must not kill the watchdog
                log.exception("watchdog check failed")
            self.stop_event.wait(self.cfg.watchdog_poll_s)
        return 0


def run_watchdog(settings: Settings, environ: Mapping[str, str] | None = None, install_signals: bool = True) -> int:
    """Lock, open the store, start the alert sender (delivery only) and watch until stopped."""
    from engine.store import open_store

    alerting = AlertService(settings, environ)  # a bad channel URL stops the watchdog too (ConfigError)
    lock = EngineLock(watchdog_lock_path(settings))
    lock.acquire()
    store = open_store(settings.store_url())
    try:
        alerting.start(store, name="watchdog", escalate=False, summary=False)
        dog = Watchdog(settings, store, alerting, environ=environ)
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *_: dog.stop_event.set())
            signal.signal(signal.SIGINT, lambda *_: dog.stop_event.set())
        return dog.run()
    finally:
        alerting.stop()
        store.dispose()
        lock.release()


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.runtime.watchdog --state PATH [--config FILE]`."""
    parser = argparse.ArgumentParser(prog="quantdesk-watchdog")
    parser.add_argument("--state", required=True, help="state.db path or SQLAlchemy URL")
    parser.add_argument("--config", default=None, help="TOML config file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        if "://" in args.state and not args.state.startswith("sqlite"):
            settings = settings_with(settings, store={"url": args.state})
        else:
            path = args.state.split(":///", 1)[1] if args.state.startswith("sqlite") else args.state
            settings = settings_with(settings, store={"path": path, "url": ""})
        return run_watchdog(settings)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except EngineLockedError as exc:
        print(str(exc).replace("another engine", "another watchdog"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
