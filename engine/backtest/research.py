"""Orchestration behind `quantdesk backtest` and `quantdesk optimize`, UI-free: resolve the strategy, the source and
the time range, make sure the history is in state.db, and name report files."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from engine.backtest.dataset import DatasetSpec, Progress, load_dataset
from engine.clock import floor_ts, parse_duration_ms, timeframe_ms
from engine.config import Settings

_DURATION = re.compile(r"^\d+[smhdw]$")


def strategy_class_for(name: str) -> type:
    """The strategy class registered under `name` (shipped, or from a folder on QUANTDESK_STRATEGY_PATH)."""
    from engine.strategy.registry import strategy_class

    return strategy_class(name)


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """Parse `key=value` parameter overrides (values as TOML literals: 24, 0.5, true, "x")."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param: expected key=value, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out


def parse_time(text: str, now_ms: int) -> int:
    """A look-back such as '365d' (before now) or an ISO date/time such as 2025-01-01, as epoch ms."""
    text = text.strip()
    if text in ("now", ""):
        return now_ms
    if _DURATION.match(text):
        return now_ms - parse_duration_ms(text)
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise ValueError(f"since: expected a look-back like 365d or a date like 2025-01-01, got {text!r}") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def make_research_source(spec: str, settings: Settings, symbols: Sequence[str]) -> Any:
    """The market source for research: the simulator (with the perpetuals of the symbols, for funding) or any spec."""
    if spec == "sim":
        from engine.data.simulator import DEFAULT_SYMBOLS, SimulatedExchange
        from engine.data.symbols import perp_symbol

        wanted = list(dict.fromkeys(list(symbols) + [perp_symbol(s) for s in symbols]))
        listed = [s for s in wanted if s in DEFAULT_SYMBOLS]
        unknown = [s for s in symbols if s not in DEFAULT_SYMBOLS]
        if unknown:
            raise ValueError(f"symbols: {', '.join(unknown)} not listed on the simulator "
                             f"(available: {', '.join(DEFAULT_SYMBOLS)})")
        return SimulatedExchange(seed=settings.simulator.seed, symbols=listed,
                                 history_days=settings.simulator.history_days,
                                 start_price_btc=settings.simulator.start_price_btc)
    from engine.data.factory import make_source

    return make_source(spec, settings)


@dataclass
class ResearchData:
    """A loaded research dataset and where it came from."""

    strategy_cls: type
    params: dict
    panel: Mapping[str, pd.DataFrame]
    spec: DatasetSpec
    load_s: float


def load_research(settings: Settings, store: Any, strategy: str, params: Mapping[str, Any],
                  symbols: Sequence[str] | None, timeframe: str | None, since: str, until: str, source: str,
                  pull: bool = True, progress: Progress | None = None) -> ResearchData:
    """Resolve the strategy and the dataset, pulling missing history into state.db, and load the panel."""
    cls = strategy_class_for(strategy)
    cls(**dict(params))  # fail early, naming a bad parameter
    tf = timeframe or cls.default_timeframe
    step = timeframe_ms(tf)
    syms = tuple(symbols or settings.data.symbols)
    src = make_research_source(source, settings, syms)
    now = floor_ts(int(src.milliseconds()), tf)
    # "now" ends at the last UTC midnight, so every run on the same day sees the same dataset (and trial count)
    end = floor_ts(now, "1d") if until.strip() in ("", "now") else floor_ts(parse_time(until, now), tf)
    start = floor_ts(parse_time(since, now), tf)
    spec = DatasetSpec(source=source, symbols=syms, timeframe=tf, since_ms=start, until_ms=min(end, now))
    t0 = time.perf_counter()
    panel = load_dataset(store, src, spec, pull=pull, progress=progress)
    n = min(len(f) for f in panel.values())
    if n < 3 * max(getattr(cls(**dict(params)), "warmup_bars", 0), 1):
        raise ValueError(f"since: only {n} {tf} bars ({n * step / 86_400_000:.0f} days); "
                         f"{strategy} needs well over its warm-up of {cls(**dict(params)).warmup_bars} bars")
    return ResearchData(cls, dict(params), panel, spec, time.perf_counter() - t0)


def report_path(settings: Settings, kind: str, strategy: str, out: str | None = None) -> Path:
    """Where a report goes: `out` if given, else <reports_dir>/<kind>-<strategy>-<UTC time>.html."""
    if out:
        return Path(out)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(settings.backtest.reports_dir) / f"{kind}-{strategy}-{stamp}.html"
