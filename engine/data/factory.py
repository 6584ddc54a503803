"""`make_source(spec, settings)`: one place that turns "sim", "ccxt:<id>" or "csv:<path>" into a MarketSource."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from engine.data.ccxt_source import AlertSink


class SourceSpecError(ValueError):
    """A source spec cannot be built; the message names the spec."""


def make_source(spec: str, settings: Any = None, *, alert: AlertSink | None = None,
                clock: Callable[[], int] | None = None, resume_ms: int | None = None,
                symbols: Sequence[str] | None = None) -> Any:
    """Build the MarketSource named by `spec` (`sim`, `ccxt:<exchange id>`, `csv:<path>`).

    For the simulator, `resume_ms` (the last market time a store holds) moves its clock forward to there, and
    `symbols` lists the spot symbols to simulate (their perpetuals are added for funding and basis); both are
    ignored by real sources. An engine builds its one source here and hands it to everything."""
    spec = (spec or "").strip()
    if spec == "sim":
        return _make_sim(settings, clock, resume_ms, symbols)
    if spec.startswith("ccxt:"):
        from engine.data.ccxt_source import CcxtSource, build_ccxt_exchange

        exchange_id = spec[5:]
        if not exchange_id:
            raise SourceSpecError("source: expected ccxt:<exchange id>, e.g. ccxt:binance")
        ex_cfg = getattr(settings, "exchange", None)
        base_url = ex_cfg.base_url if ex_cfg is not None and ex_cfg.id == exchange_id else ""
        try:
            exchange = build_ccxt_exchange(exchange_id, base_url=base_url)
        except ValueError as exc:
            raise SourceSpecError(str(exc)) from exc
        retries = getattr(getattr(settings, "execution", None), "max_retries", 4)
        return CcxtSource(exchange, max_retries=retries, alert=alert, clock=clock)
    if spec.startswith("csv:"):
        from engine.data.csv_source import CsvSource

        path = spec[4:]
        if not path:
            raise SourceSpecError("source: expected csv:<path to a file or folder>")
        try:
            return CsvSource(path, now_ms=clock() if clock else None)
        except (FileNotFoundError, ValueError) as exc:
            raise SourceSpecError(f"source {spec!r}: {exc}") from exc
    raise SourceSpecError(f"source: expected sim, ccxt:<exchange id> or csv:<path>, got {spec!r}")


def _make_sim(settings: Any, clock: Callable[[], int] | None, resume_ms: int | None,
              symbols: Sequence[str] | None) -> Any:
    """The embedded simulated exchange, configured from settings.simulator and settings.data.

    SimulatedExchange maps wall time to simulated time from its creation; at speed > 1 a restarted engine would
    otherwise jump back in simulated time and re-decide bars it already traded, hence `resume_ms`."""
    from engine.data.simulator import SimulatedExchange
    from engine.data.symbols import perp_symbol

    sim_cfg = getattr(settings, "simulator", None)
    kwargs: dict[str, Any] = {}
    if sim_cfg is not None:
        kwargs.update(seed=sim_cfg.seed, speed=sim_cfg.speed, history_days=sim_cfg.history_days,
                      start_price_btc=sim_cfg.start_price_btc)
    wall: Callable[[], float] = (lambda: clock() / 1000.0) if clock is not None else time.time  # seconds
    offset = max(0.0, resume_ms / 1000 - wall()) if resume_ms else 0.0
    if clock is not None or offset:
        kwargs["clock"] = (lambda: wall() + offset) if offset else wall
    if symbols:  # else every simulated symbol (--symbols picks among them)
        spot = list(symbols)
        kwargs["symbols"] = spot + [p for p in dict.fromkeys(perp_symbol(s) for s in spot) if p not in spot]
    return SimulatedExchange(**kwargs)
