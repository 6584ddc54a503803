"""Point a ccxt exchange's REST and websocket URLs at another base URL (the exchange twin, a proxy, a testnet).

`[exchange] base_url = "http://127.0.0.1:PORT"` rewrites every URL under `exchange.urls['api']`, keeping each URL's
path: REST `https://fapi.binance.com/fapi/v1` -> `http://127.0.0.1:PORT/fapi/v1`. Websocket URLs share one port, so
their path is prefixed with the original host's first label: `wss://stream.binance.com:9443/ws` ->
`ws://127.0.0.1:PORT/stream/ws`, `wss://fstream.binance.com/ws` -> `ws://127.0.0.1:PORT/fstream/ws` (ccxt tells spot
from USD-M streams by "/stream" in the URL, which this keeps). An https base gives wss URLs.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

# Binance's REST path roots and the market type whose error-code table ccxt applies to them. ccxt picks the table
# by host (fapi.binance.com -> USD-M, whose -4164 is InvalidOrder); on one base URL only the path tells them apart.
_MARKET_BY_PATH_ROOT = {"api": "spot", "sapi": "spot", "fapi": "linear", "dapi": "inverse", "eapi": "option",
                        "papi": "portfolioMargin"}


class BaseUrlError(ValueError):
    """The base URL cannot be used; the message names it."""


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; raises naming it unless it is http(s)://host[:port]."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BaseUrlError(f"exchange.base_url: expected http://host:port or https://host[:port], got {base_url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise BaseUrlError(f"exchange.base_url: expected no path or query, got {base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _rest(url: str, base: str) -> str:
    return base + urlsplit(url).path


def _ws(url: str, base: str) -> str:
    parts = urlsplit(url)
    label = (parts.hostname or "").split(".")[0]
    scheme = "wss" if base.startswith("https") else "ws"
    return f"{scheme}://{urlsplit(base).netloc}/{label}{parts.path}"


def rewrite_urls(api: Any, base: str, ws: bool = False) -> Any:
    """The `urls['api']` tree with every URL rewritten onto `base` (nested dicts kept; 'ws' subtrees as websockets)."""
    if isinstance(api, dict):
        return {k: rewrite_urls(v, base, ws or k == "ws") for k, v in api.items()}
    if isinstance(api, str) and "://" in api:
        if urlsplit(api).netloc == urlsplit(base).netloc:
            return api  # already on the base (pointing twice changes nothing)
        return _ws(api, base) if ws or api.startswith("ws") else _rest(api, base)
    return api


def _exceptions_by_url(exchange: Any, base: str, by_host: Any, url: Any, exact_or_broad: str) -> dict:
    """ccxt's per-market error table for a URL on `base` (chosen by its path root), else ccxt's own choice."""
    if isinstance(url, str) and url.startswith(base + "/"):
        root = urlsplit(url).path.lstrip("/").split("/", 1)[0]
        market = _MARKET_BY_PATH_ROOT.get(root)
        if market is not None:
            tables = exchange.exceptions.get(market, {}) if isinstance(exchange.exceptions, dict) else {}
            return dict(tables.get(exact_or_broad, {})) if isinstance(tables, dict) else {}
    return by_host(url, exact_or_broad)


def point_at(exchange: Any, base_url: str) -> Any:
    """Rewrite a ccxt (or ccxt.pro) exchange's REST and websocket URLs onto `base_url`; returns the exchange.

    Exchanges that choose error tables by host (binance's `get_exceptions_by_url`) are told the market of each
    rewritten URL by its path, so a USD-M reject maps to the same ccxt exception as on fapi.binance.com."""
    base = check_base_url(base_url)
    exchange.urls = dict(exchange.urls)
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], base)
    by_host = getattr(exchange, "get_exceptions_by_url", None)
    if callable(by_host) and not isinstance(by_host, functools.partial):  # pointing twice wraps once
        exchange.get_exceptions_by_url = functools.partial(_exceptions_by_url, exchange, base, by_host)
    return exchange
