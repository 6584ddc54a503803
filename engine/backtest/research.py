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
from engine.store.db import Store

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
    """A loaded research dataset and where it came from (exchange id, synthetic or not, any resampling rule)."""

    strategy_cls: type
    params: dict
    panel: Mapping[str, pd.DataFrame]
    spec: DatasetSpec
    load_s: float
    exchange: str = "sim"
    synthetic: bool = True
    resample_rule: str | None = None
    resample_dropped: int = 0

    def provenance(self) -> dict[str, Any]:
        """Where the bars came from, for reports and JSON: exchange, source, synthetic flag, resampling rule."""
        return {"exchange": self.exchange, "source": self.spec.source, "synthetic": self.synthetic,
                "resampled": self.resample_rule, "resample_dropped_buckets": self.resample_dropped}


def stored_series(store: Store, symbols: Sequence[str]) -> dict[str, dict[str, dict[str, tuple[int, int]]]]:
    """{exchange: {symbol: {timeframe: (first_ts, last_ts)}}} of stored candles for these symbols."""
    from engine.store.candles import candle_series

    out: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}
    for ex, sym, tf, _rows, first, last in candle_series(store):
        if sym in symbols:
            out.setdefault(ex, {}).setdefault(sym, {})[tf] = (int(first), int(last))
    return out


def choose_stored(store: Store, symbols: Sequence[str], timeframe: str,
                  exchange: str | None) -> tuple[str, str] | None:
    """(exchange, stored timeframe to load) holding every symbol at `timeframe` or one it can be built from.

    None when nothing is stored; ValueError naming the choices when several exchanges hold them and none is chosen.
    """
    from engine.backtest.resample import base_timeframe

    held = stored_series(store, symbols)
    usable: dict[str, str] = {}
    for ex, per_symbol in held.items():
        if ex == "sim" or set(per_symbol) != set(symbols):  # the simulator re-serves any range: use it as a source
            continue
        common = set.intersection(*(set(tfs) for tfs in per_symbol.values()))
        tf = timeframe if timeframe in common else base_timeframe(common, timeframe)
        if tf:
            usable[ex] = tf
    if exchange is not None:
        if exchange not in usable:
            have = ", ".join(f"{ex} ({', '.join(sorted({t for s in v.values() for t in s}))})"
                             for ex, v in sorted(held.items())) or "nothing"
            raise ValueError(f"exchange: {exchange} holds no {timeframe} bars (or lower ones to build them) for "
                             f"{', '.join(symbols)}; stored: {have}")
        return exchange, usable[exchange]
    if len(usable) > 1:
        raise ValueError(f"exchange: {', '.join(symbols)} stored on several exchanges ({', '.join(sorted(usable))}); "
                         "choose one with --exchange")
    return next(iter(usable.items())) if usable else None


def load_research(settings: Settings, store: Any, strategy: str, params: Mapping[str, Any],
                  symbols: Sequence[str] | None, timeframe: str | None, since: str | None, until: str,
                  source: str | None, pull: bool = True, progress: Progress | None = None,
                  exchange: str | None = None) -> ResearchData:
    """Resolve the strategy and the dataset and load the panel.

    With no `source`, stored bars are used when state.db holds them (any exchange, `exchange` to choose), resampled
    on load from a lower stored timeframe when needed; otherwise simulator symbols are pulled from the simulator.
    A named `source` pulls missing history through it first (when `pull`). `since` None means the whole stored series
    for stored data and 365 days for a source.
    """
    cls = strategy_class_for(strategy)
    cls(**dict(params))  # fail early, naming a bad parameter
    tf = timeframe or cls.default_timeframe
    step = timeframe_ms(tf)
    syms = tuple(symbols or settings.data.symbols)
    stored = choose_stored(store, syms, tf, exchange) if source is None and exchange != "sim" else None
    if source is None and stored is None:
        if exchange is not None and exchange != "sim":
            raise ValueError(f"exchange: nothing stored for {', '.join(syms)} on {exchange}")
        source = "sim"
    t0 = time.perf_counter()
    if stored is not None:
        data = _load_stored(store, cls, params, syms, tf, since, until, *stored)
    else:
        assert source is not None
        src = make_research_source(source, settings, syms)
        now = floor_ts(int(src.milliseconds()), tf)
        # "now" ends at the last UTC midnight, so every run on the same day sees the same dataset (and trial count)
        end = floor_ts(now, "1d") if until.strip() in ("", "now") else floor_ts(parse_time(until, now), tf)
        start = floor_ts(parse_time(since or "365d", now), tf)
        spec = DatasetSpec(source=source, symbols=syms, timeframe=tf, since_ms=start, until_ms=min(end, now))
        panel = load_dataset(store, src, spec, pull=pull, progress=progress)
        data = ResearchData(cls, dict(params), panel, spec, 0.0, exchange=src.id, synthetic=src.id == "sim")
    data.load_s = time.perf_counter() - t0
    n = min(len(f) for f in data.panel.values())
    warmup = getattr(cls(**dict(params)), "warmup_bars", 0)
    if n < 3 * max(warmup, 1):
        raise ValueError(f"since: only {n} {tf} bars ({n * step / 86_400_000:.0f} days); "
                         f"{strategy} needs well over its warm-up of {warmup} bars")
    return data


def _load_stored(store: Store, cls: type, params: Mapping[str, Any], syms: tuple[str, ...], tf: str,
                 since: str | None, until: str, exchange: str, stored_tf: str) -> ResearchData:
    """The panel from stored candles of one exchange, resampled from `stored_tf` when it is not `tf`."""
    from engine.backtest.resample import resample_panel, rule_text
    from engine.features.panel import load_panel

    spans = stored_series(store, syms)[exchange]
    last = max(spans[s][stored_tf][1] for s in syms) + timeframe_ms(stored_tf)
    first = min(spans[s][stored_tf][0] for s in syms)
    end = last if until.strip() in ("", "now") else parse_time(until, last)
    start = first if not since else max(parse_time(since, end), 0)
    start, end = floor_ts(start, tf) + (timeframe_ms(tf) if start % timeframe_ms(tf) else 0), floor_ts(end, tf)
    spec = DatasetSpec(source=f"stored:{exchange}", symbols=syms, timeframe=tf, since_ms=start, until_ms=end)
    panel = load_panel(store, exchange, list(syms), stored_tf, start, end)
    rule, dropped = None, 0
    if stored_tf != tf:
        panel, dropped = resample_panel(panel, stored_tf, tf)
        rule = rule_text(stored_tf, tf)
    empty = [s for s, f in panel.items() if len(f) < 2]
    if empty:
        raise ValueError(f"since: no stored {tf} bars for {', '.join(empty)} on {exchange} in the requested range")
    return ResearchData(cls, dict(params), panel, spec, 0.0, exchange=exchange, synthetic=exchange == "sim",
                        resample_rule=rule, resample_dropped=dropped)


def report_path(settings: Settings, kind: str, strategy: str, out: str | None = None) -> Path:
    """Where a report goes: `out` if given, else <reports_dir>/<kind>-<strategy>-<UTC time>.html."""
    if out:
        return Path(out)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(settings.backtest.reports_dir) / f"{kind}-{strategy}-{stamp}.html"
