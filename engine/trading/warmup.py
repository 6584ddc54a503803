"""How much history the enabled instances need before their first tick (from their strategies' declared warm-up)."""

from __future__ import annotations

from engine.config import Settings

MIN_WARMUP_BARS = 300


def warmup_bars(settings: Settings) -> int:
    """Bars of history every instance needs before its first tick: twice the largest declared warm-up plus 100."""
    from engine.strategy.registry import strategy_class

    need = MIN_WARMUP_BARS
    for inst in settings.strategies.values():
        if not inst.enabled:
            continue
        try:
            need = max(need, 2 * int(strategy_class(inst.strategy).warmup_bars) + 100)
        except Exception:  # noqa: BLE001 - an unknown strategy is reported by its tick, not here
            continue
    return need
