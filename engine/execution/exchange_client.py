"""The ccxt exchange client for live trading: keys from the environment only, ccxt's rate limiter on, and the
exchange twin's URL when `[exchange] base_url` points at one."""

from __future__ import annotations

from typing import Any, Mapping

API_KEY_ENV, API_SECRET_ENV = "QUANTDESK_API_KEY", "QUANTDESK_API_SECRET"


def check_env_keys(environ: Mapping[str, str]) -> tuple[str, str]:
    """The API key and secret from the environment; ValueError naming the missing variables."""
    missing = [n for n in (API_KEY_ENV, API_SECRET_ENV) if not environ.get(n)]
    if missing:
        raise ValueError(f"live trading needs {' and '.join(missing)} in the environment (keys are read from the "
                         "environment only)")
    return environ[API_KEY_ENV], environ[API_SECRET_ENV]


def exchange_from_env(exchange_id: str, environ: Mapping[str, str], base_url: str = "") -> Any:
    """A ccxt exchange instance with keys from the environment and ccxt's rate limiter on.

    `base_url` (the exchange twin on 127.0.0.1) rewrites every REST URL of the exchange to that host."""
    import ccxt

    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"execution.exchange: unknown ccxt exchange {exchange_id!r}")
    key, secret = check_env_keys(environ)
    config: dict[str, Any] = {"apiKey": key, "secret": secret, "enableRateLimit": True}
    if exchange_id.startswith("binance"):  # the market types this desk trades: spot and USD-M perpetuals
        # with keys set ccxt would also call the heavy, rate-limited /sapi capital and margin endpoints on load
        config["options"] = {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False,
                             "fetchMargins": False}  # cash spot and USD-M only: no margin pair list
    exchange = getattr(ccxt, exchange_id)(config)
    if base_url:
        from engine.data.ccxt_urls import point_at

        point_at(exchange, base_url)
    return exchange
