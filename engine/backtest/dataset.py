"""Research datasets: make sure state.db holds the history a backtest needs (pulling it through the normal ingest
path when it is missing), then load the point-in-time panel.

Ingest is incremental and idempotent, so a new user's first `quantdesk backtest` pulls a year of simulated bars once,
and every later run only reads state.db.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from engine.clock import timeframe_ms
from engine.store.db import Store

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DatasetSpec:
    """Which bars: source spec (sim | ccxt:<id> | csv:<path>), symbols, timeframe and [since_ms, until_ms)."""

    source: str
    symbols: tuple[str, ...]
    timeframe: str
    since_ms: int
    until_ms: int

    def __post_init__(self) -> None:
        timeframe_ms(self.timeframe)
        if not self.symbols:
            raise ValueError("symbols: need at least one symbol")
        if self.until_ms <= self.since_ms:
            raise ValueError(f"since: start {self.since_ms} must be before the end {self.until_ms}")


def ensure_history(store: Store, source: Any, spec: DatasetSpec, progress: Progress | None = None,
                   feeds: bool = True) -> dict:
    """Ingest missing candles (and, where the source has them, funding and feeds) for the spec; returns counts.

    Feeds are market-wide: a caller ensuring several symbols one by one passes feeds=False and calls
    `ensure_feeds` once."""
    from engine.data.ingest import ingest_candles, ingest_funding
    from engine.data.symbols import perp_symbol

    written: dict[str, int] = {}
    for sym in spec.symbols:
        cb = (lambda done, total, s=sym: progress(f"candles {s}", done, total)) if progress else None
        rep = ingest_candles(store, source, sym, spec.timeframe, spec.since_ms, spec.until_ms, progress=cb)
        written[f"candles {sym}"] = rep.inserted + rep.changed  # backfills and gap fills count too
        perp = perp_symbol(sym)
        markets = getattr(source, "markets", {}) or {}
        if perp in markets and hasattr(source, "fetch_funding_rate_history"):
            if progress:
                progress(f"funding {perp}", 0, 1)
            rep = ingest_funding(store, source, perp, spec.since_ms, spec.until_ms)
            written[f"funding {perp}"] = rep.inserted
    if feeds:
        written.update(ensure_feeds(store, source, spec.since_ms, spec.until_ms, progress))
    return written


def ensure_feeds(store: Store, source: Any, since_ms: int, until_ms: int, progress: Progress | None = None) -> dict:
    """Ingest the source's missing feed values (simulator feeds; none elsewhere) from 60 days before since_ms."""
    if not hasattr(source, "feed_source"):
        return {}
    from engine.data.ingest import ingest_feed
    from engine.data.simulator import FEEDS

    written: dict[str, int] = {}
    for feed in FEEDS:
        if progress:
            progress(f"feed {feed}", 0, 1)
        rep = ingest_feed(store, source.feed_source(feed), since_ms - 60 * 86_400_000, until_ms)
        written[f"feed {feed}"] = rep.inserted
    return written


def load_dataset(store: Store, source: Any, spec: DatasetSpec, *, pull: bool = True,
                 progress: Progress | None = None) -> dict[str, pd.DataFrame]:
    """The research panel for the spec, pulling missing history into state.db first when `pull` is set."""
    from engine.features.panel import load_panel

    if pull:
        ensure_history(store, source, spec, progress)
    panel = load_panel(store, source.id, list(spec.symbols), spec.timeframe, spec.since_ms, spec.until_ms)
    empty = [s for s, f in panel.items() if len(f) < 2]
    if empty:
        raise ValueError(f"symbols: no stored {spec.timeframe} bars for {', '.join(empty)} on {source.id} in the "
                         "requested range (pull them with `quantdesk data pull` or use --source sim)")
    return panel
