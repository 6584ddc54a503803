"""Data pull jobs: incremental candle ingest per source, symbol and timeframe (plus the warm-up backfill), funding
rates of the perpetuals, and the macro, sentiment and on-chain feeds."""

from __future__ import annotations

from typing import Any

from engine.clock import timeframe_ms
from engine.config import Settings
from engine.store.db import Store

DAY_MS = 86_400_000
INCREMENTAL_BARS = 5  # a regular pull looks back this many bars; ingest only writes what is missing


def pull_candles(store: Store, source: Any, symbol: str, timeframe: str, settings: Settings,
                 warmup_bars: int | None = None) -> dict[str, Any]:
    """Ingest the closed bars missing for one series; with warmup_bars, that much history (the strategies' need).

    A regular pull resumes after the newest stored bar (at most the backfill window back), not only the last
    INCREMENTAL_BARS: pulls further apart than that (a stalled engine, a simulator at a speed-up) would otherwise
    leave holes in the stored series, and a panel of symbols with holes in different places made the weekly
    re-optimisation's backtest fail ("equity contains NaN")."""
    from engine.data.ingest import ingest_candles
    from engine.store.market_repo import candle_span

    step = timeframe_ms(timeframe)
    now = source.milliseconds()
    window = settings.data.backfill_days * 86_400_000 // step
    bars = min(warmup_bars, window) if warmup_bars else INCREMENTAL_BARS
    since = now - bars * step
    if not warmup_bars:
        _first, last = candle_span(store, source.id, symbol, timeframe)
        if last is not None:
            since = min(since, max(last + step, now - max(window, INCREMENTAL_BARS) * step))
    report = ingest_candles(store, source, symbol, timeframe, max(0, since))
    return report.as_dict()


def context_days(settings: Settings) -> int:
    """How far back funding and feeds are kept: the backfill window, or the model training window if longer, so the
    meta-model trains on features that exist over its whole window (ingest is incremental after the first pull)."""
    return max(settings.data.backfill_days, settings.ml.train_window_days)


def pull_feeds(store: Store, source: Any, settings: Settings) -> dict[str, Any]:
    """Ingest each configured macro/sentiment/on-chain feed up to the source's now (data.feed_specs, else the
    simulator's own feeds); a feed with neither is reported as skipped."""
    from engine.data.feeds import make_feed
    from engine.data.ingest import ingest_feed

    now = source.milliseconds()
    out: dict[str, Any] = {}
    for feed in settings.data.feeds:
        spec = settings.data.feed_specs.get(feed)
        if spec:
            feed_source = make_feed(feed, spec, settings)
        elif hasattr(source, "feed_source"):
            feed_source = source.feed_source(feed)
        else:
            out[feed] = {"skipped": "no data.feed_specs entry and the source has no feeds of its own"}
            continue
        out[feed] = ingest_feed(store, feed_source, now - context_days(settings) * DAY_MS, now).as_dict()
    return out


def pull_funding(store: Store, source: Any, settings: Settings) -> dict[str, Any]:
    """Ingest settled funding rates of the perpetual of each configured symbol that the source lists."""
    from engine.data.ingest import ingest_funding

    now = source.milliseconds()
    out: dict[str, Any] = {}
    from engine.data.symbols import perp_symbol

    for symbol in settings.data.symbols:
        perp = perp_symbol(symbol)
        try:
            source.market(perp)
        except Exception:  # noqa: BLE001 - the source lists no perpetual for this symbol
            continue
        out[perp] = ingest_funding(store, source, perp, now - context_days(settings) * DAY_MS, now).as_dict()
    return out
