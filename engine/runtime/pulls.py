"""Data pull jobs: incremental candle ingest per source, symbol and timeframe (plus the warm-up backfill)."""

from __future__ import annotations

from typing import Any

from engine.clock import timeframe_ms
from engine.config import Settings
from engine.store.db import Store

INCREMENTAL_BARS = 5  # a regular pull looks back this many bars; ingest only writes what is missing


def warmup_bars(settings: Settings) -> int:
    """Bars of history every instance needs before its first tick (from the strategies' declared warm-up)."""
    need = 300
    for inst in settings.strategies.values():
        if not inst.enabled:
            continue
        try:
            from strategies.registry import strategy_class

            need = max(need, 2 * int(strategy_class(inst.strategy).warmup_bars) + 100)
        except Exception:  # noqa: BLE001 - an unknown strategy is reported by its tick, not here
            continue
    return need


def pull_candles(store: Store, source: Any, symbol: str, timeframe: str, settings: Settings,
                 warmup: bool = False) -> dict[str, Any]:
    """Ingest the closed bars missing for one series; with warmup=True, enough history for the strategies."""
    from engine.data.ingest import ingest_candles

    step = timeframe_ms(timeframe)
    bars = min(warmup_bars(settings), settings.data.backfill_days * 86_400_000 // step) if warmup else \
        INCREMENTAL_BARS
    since = source.milliseconds() - bars * step
    report = ingest_candles(store, source, symbol, timeframe, max(0, since))
    return report.as_dict()
