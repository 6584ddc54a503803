"""The engine's market-data streams: built from settings when the source is ccxt and `exchange.stream` is on.

The service starts them after the REST warm-up backfill, skips a REST pull while the matching stream is healthy
(polling is the fallback when a stream is down or unavailable), and publishes their statistics in engine_status
(`info.streams`) for `quantdesk data status` and the console.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from engine.config import Settings
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.streams")


def start_streams(settings: Settings, store: Store, source: Any) -> Any:
    """Start MarketStreams for a ccxt source (None for other sources, or with exchange.stream off)."""
    spec = settings.data.source
    if not spec.startswith("ccxt:") or not settings.exchange.stream:
        return None
    from engine.data.ccxt_source import build_ccxt_exchange
    from engine.data.streams import MarketStreams

    exchange_id = spec[5:]
    base_url = settings.exchange.base_url if settings.exchange.id == exchange_id else ""
    try:
        build_ccxt_exchange(exchange_id, pro=True)  # fails fast, naming an id without a websocket client
    except ValueError as exc:
        raise_alert(store, "warning", "stream.unavailable", f"{exc}; polling REST instead",
                    {"exchange": exchange_id}, source="engine")
        return None

    def alert(severity: str, rule: str, message: str, values: Any) -> None:
        raise_alert(store, severity, rule, message, values, source="engine")

    streams = MarketStreams(store, lambda: build_ccxt_exchange(exchange_id, base_url=base_url, pro=True,
                                                                ws_compress=settings.exchange.ws_compress), source,
                            list(settings.data.symbols), list(settings.data.timeframes), alert=alert,
                            backoff_max_s=settings.exchange.reconnect_max_s,
                            stale_s=settings.exchange.stream_stale_s)
    log.info("streaming %s from %s (%d streams)", ", ".join(settings.data.symbols), exchange_id,
             len(streams.stats))
    return streams.start()


class StreamStatus:
    """Writes the streams' statistics into engine_status every `every_s` seconds, and raises a stale-data alert
    naming each stream that has been silent for longer than its stale limit (merged while it stays silent)."""

    def __init__(self, streams: Any, store: Store | None = None, every_s: float = 2.0) -> None:
        self.streams = streams
        self.store = store
        self.every_s = every_s
        self._last = 0.0

    def due(self) -> dict[str, Any] | None:
        """The info update to write now, or None."""
        if self.streams is None or time.monotonic() - self._last < self.every_s:
            return None
        self._last = time.monotonic()
        snapshot = self.streams.snapshot()
        if self.store is not None:
            for st in snapshot:
                age = st["last_message_age_s"]
                if age is not None and age > self.streams.stale_s:
                    raise_alert(self.store, "warning", "stream.stale", f"stream {st['stream']} silent for {age:.0f}s "
                                f"(REST polling covers it meanwhile)", {"stream": st["stream"], "age_s": age},
                                source="engine", merge_key=f"stale:{st['stream']}")
        return {"streams": snapshot, "streams_at": int(time.time() * 1000)}
