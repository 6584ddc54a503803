"""Connecting the exchange broker for a live start, with one-line causes instead of tracebacks.

Every way a live start can fail before trading (no keys, unknown exchange, no network, exchange down, keys refused,
unknown symbols) raises `LiveStartError` whose message is one line: what is wrong and what to do. The CLI and the
engine process print that line and exit non-zero. Key values never appear in a message; only the variables' names.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from engine.execution.ccxt_broker import CcxtBroker
from engine.execution.exchange_client import API_KEY_ENV, API_SECRET_ENV, check_env_keys, exchange_from_env
from engine.store.db import Store

KEY_ENV_NAMES = (API_KEY_ENV, API_SECRET_ENV)


class LiveStartError(ValueError):
    """A live start that cannot proceed; the message is one line naming the cause and the fix."""


def _exchange_id(settings: Any) -> str:
    """The exchange the live broker trades on: the ccxt id of data.source (live needs the exchange's own data)."""
    src = settings.data.source
    if not src.startswith("ccxt:"):
        raise LiveStartError(f"data.source: live trading needs the exchange's own data (ccxt:<id>), got {src!r}; "
                             f"set [data] source = \"ccxt:{settings.execution.exchange}\"")
    return src.split(":", 1)[1]


def base_url_of(settings: Any) -> str:
    """Where the exchange is reached: `[exchange] base_url` (the twin on 127.0.0.1), empty for the real exchange."""
    return str(getattr(getattr(settings, "exchange", None), "base_url", "") or "")


def live_symbols(settings: Any) -> list[str]:
    """Every symbol a live desk may trade: data symbols plus each configured instance's symbols."""
    out = dict.fromkeys(settings.data.symbols)
    for inst in settings.strategies.values():
        out.update(dict.fromkeys(inst.symbols))
    return list(out)


def _markets_cache(settings: Any) -> tuple[Any, str]:
    """(cache file or None, endpoint key) of this desk's markets cache (engine/execution/markets_cache.py)."""
    from engine.execution.markets_cache import cache_path
    from engine.store.db import sqlite_path

    base_url = base_url_of(settings)
    exchange_id = _exchange_id(settings)
    return cache_path(sqlite_path(settings.store_url()), exchange_id, base_url), f"{exchange_id}@{base_url or 'live'}"


def _guarded(exchange_id: str, what: str, fn: Any) -> Any:
    """Run one start-up exchange call; ccxt errors become a one-line LiveStartError naming `what` failed."""
    import ccxt

    try:
        return fn()
    except LiveStartError:
        raise
    except ccxt.AuthenticationError as exc:
        raise LiveStartError(f"{exchange_id} refused the API keys ({_short(exc)}); check {API_KEY_ENV} / "
                             f"{API_SECRET_ENV} and the key's permissions") from None
    except ccxt.NetworkError as exc:
        raise LiveStartError(f"cannot {what} on {exchange_id}: {type(exc).__name__} ({_short(exc)}); check the "
                             "network and the exchange's status page, then start again") from None
    except ccxt.ExchangeError as exc:
        raise LiveStartError(f"{exchange_id} refused to {what}: {type(exc).__name__} ({_short(exc)})") from None


def load_all_markets(exchange: Any, settings: Any, save: bool = True) -> None:
    """Every market from the exchange (reload), every desk symbol listed, the desk's markets cached (`save`);
    LiveStartError."""
    from engine.execution import markets_cache

    exchange_id = _exchange_id(settings)

    def load() -> None:
        exchange.load_markets(True)
        missing = [s for s in live_symbols(settings) if s not in exchange.markets]
        if missing:
            raise LiveStartError(f"symbols not listed on {exchange_id}: {', '.join(missing)}; fix [data] symbols "
                                 "and [strategies.*] symbols")

    _guarded(exchange_id, "load markets", load)
    exchange.markets_from_cache = False
    if save:
        path, endpoint = _markets_cache(settings)
        markets_cache.save(path, exchange.markets, live_symbols(settings), endpoint)


def connect_exchange(settings: Any, environ: Mapping[str, str], *, markets_cache: bool = False) -> Any:
    """A ccxt exchange with keys from the environment, markets loaded and the account readable; LiveStartError.

    `markets_cache` (the live engine's own connection): with a fresh cache only the desk's own markets are set
    (`exchange.markets_from_cache` is True): enough to re-arm protection at once; the caller then runs
    `load_all_markets` before anything else trades. Other callers (the LIVE prompt, the watchdog) load every market
    and leave the cache alone."""
    from engine.execution import markets_cache as markets_cache_mod
    from engine.start_timeline import mark

    try:
        check_env_keys(environ)
    except ValueError as exc:
        raise LiveStartError(f"{exc}; export them in the engine's environment (never in the config file)") from None
    exchange_id = _exchange_id(settings)
    try:
        exchange = exchange_from_env(exchange_id, environ, base_url=base_url_of(settings))
    except ValueError as exc:
        hint = "use an id from ccxt.exchanges" if "unknown ccxt exchange" in str(exc) else "fix [exchange] base_url"
        raise LiveStartError(f"{exc}; {hint}") from None
    mark("ccxt import")
    path, endpoint = _markets_cache(settings) if markets_cache else (None, "")
    max_age_s = float(getattr(settings.exchange, "markets_cache_hours", 0.0)) * 3600
    cached = markets_cache_mod.load(path, live_symbols(settings), max_age_s, endpoint)
    if cached is not None:
        exchange.set_markets(cached)
        exchange.markets_from_cache = True
        mark("markets (cached)")
    else:
        load_all_markets(exchange, settings, save=markets_cache)
        mark("markets")
    _guarded(exchange_id, "read the account", exchange.fetch_balance)
    mark("balance")
    return exchange


def _short(exc: BaseException) -> str:
    """The first line of an exception, at most 160 characters, with no key material (ccxt never echoes secrets)."""
    return (str(exc).splitlines() or [""])[0][:160]


def connect_exchange_broker(store: Store, settings: Any, environ: Mapping[str, str]) -> CcxtBroker:
    """The exchange broker of a live engine (connected and checked, protective orders on); LiveStartError when it
    cannot be."""
    from engine.execution.protection import Protector, config_spec_of

    exchange = connect_exchange(settings, environ, markets_cache=True)
    broker = CcxtBroker(store, exchange, max_retries=settings.execution.max_retries, symbols=live_symbols(settings),
                        stale_after_s=settings.execution.order_timeout_s)
    # protective stops on the exchange; the engine swaps in each strategy's own stop spec where it declares one
    broker.protector = Protector(store, broker, config_spec_of(settings.risk),
                                 limit_offset=settings.risk.protective_limit_offset_pct)
    return broker


def account_summary(exchange: Any, symbols: Iterable[str]) -> dict[str, float]:
    """Non-zero balances of the account (the prompt shows them), quote and base assets of `symbols` first."""
    bal = exchange.fetch_balance()
    totals = {k: float(v) for k, v in (bal.get("total") or {}).items() if v}
    first = []
    for s in symbols:
        m = exchange.markets.get(s) or {}
        first += [a for a in (m.get("quote"), m.get("base")) if a in totals and a not in first]
    return {a: totals[a] for a in first + sorted(a for a in totals if a not in first)}
