"""CcxtSource: a MarketSource over an injected `ccxt.Exchange`, with pacing, retries with backoff and alerts.

The exchange instance is injected (never built here), so tests pass a real `ccxt.binance` whose `fetch` serves recorded
responses and the real ccxt parser runs offline. Pacing replaces the instance's `throttle` with one that waits
`rateLimit * cost` ms between requests through an injectable sleep/monotonic pair, so ccxt's per-endpoint weights are
respected and tests can observe the waits. Transient errors (NetworkError and its subclasses RateLimitExceeded,
ExchangeNotAvailable, RequestTimeout) are retried with exponential backoff; any other ccxt error becomes an alert and
a `SourceError`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

from engine.clock import timeframe_ms

log = logging.getLogger("quantdesk.ccxt")
AlertSink = Callable[[str, str, str, Mapping[str, Any]], None]  # (severity, rule, message, values)


class SourceError(RuntimeError):
    """A market-data request failed for good; `alerted` says whether an alert was already raised for it."""

    def __init__(self, message: str, *, retryable: bool = False, alerted: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.alerted = alerted


class CcxtSource:
    """A MarketSource over a ccxt exchange instance (injected; its `fetch` may be a recording replay)."""

    ohlcv_page_limit = 1000

    def __init__(self, exchange: Any, *, max_retries: int = 4, backoff_s: float = 0.5, backoff_max_s: float = 30.0,
                 page_limit: int | None = None, alert: AlertSink | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], int] | None = None) -> None:
        import ccxt  # the caller already depends on ccxt (it built the exchange)

        if not isinstance(exchange, ccxt.Exchange):
            raise TypeError(f"exchange: expected a ccxt.Exchange instance, got {type(exchange).__name__}")
        if max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {max_retries}")
        self._ccxt = ccxt
        self.exchange = exchange
        self.id: str = exchange.id
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.alert = alert
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        self._next_request_at = 0.0
        self._venue_ts: int | None = None  # newest observed market time and when (monotonic) it was observed
        self._venue_at = 0.0
        self.requests = 0
        self.retries = 0
        self.waited_s = 0.0
        self.ohlcv_page_limit = page_limit or self._feature_limit()
        # Binance aggTrades answers at most one hour per request when given a start time (ccxt sets endTime itself).
        self.trades_window_ms: int | None = 3_600_000 if self.id.startswith("binance") else None
        exchange.enableRateLimit = True
        exchange.throttle = self._throttle  # ccxt's fetch2 calls this with the endpoint's weight before each request

    def _feature_limit(self) -> int:
        """The exchange's maximum OHLCV page from ccxt's `features` table (Binance spot: 1000)."""
        try:
            limit = self.exchange.features["spot"]["fetchOHLCV"]["limit"]
        except (KeyError, TypeError, AttributeError):
            limit = None
        return int(limit) if limit else 500

    def _throttle(self, cost: float | None = None) -> None:
        """Wait until `rateLimit * cost` ms have passed since the previous request started."""
        interval = float(self.exchange.rateLimit) * (1.0 if cost is None else float(cost)) / 1000.0
        now = self._monotonic()
        wait = self._next_request_at - now
        if wait > 0:
            self._sleep(wait)
            self.waited_s += wait
            now += wait
        self._next_request_at = now + interval
        self.requests += 1

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a ccxt call; retry transient errors with exponential backoff, alert on everything else."""
        ccxt = self._ccxt
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:  # includes RateLimitExceeded, ExchangeNotAvailable, RequestTimeout
                if attempt >= self.max_retries:
                    message = f"{self.id} {what}: gave up after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                    alerted = self._alert("warning", "ccxt.retries_exhausted", message, what, exc)
                    raise SourceError(message, retryable=True, alerted=alerted) from exc
                delay = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
                if isinstance(exc, ccxt.DDoSProtection):  # includes RateLimitExceeded (Binance -1003 maps here)
                    delay = min(self.backoff_max_s, delay * 2)
                self.retries += 1
                log.warning("%s %s: %s (%s); retry %d/%d in %.2fs", self.id, what, type(exc).__name__, exc,
                            attempt + 1, self.max_retries, delay)
                self._sleep(delay)
                self.waited_s += delay
            except ccxt.BaseError as exc:
                message = f"{self.id} {what}: {type(exc).__name__}: {exc}"
                alerted = self._alert("warning", "ccxt.error", message, what, exc)
                raise SourceError(message, alerted=alerted) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _alert(self, severity: str, rule: str, message: str, what: str, exc: Exception) -> bool:
        if self.alert is None:
            return False
        series = what.split(", since=")[0]  # the call without its cursor: repeats of one failure merge into one alert
        self.alert(severity, rule, message, {"exchange": self.id, "call": what, "error": type(exc).__name__,
                                             "merge_key": f"{self.id}:{series}:{type(exc).__name__}"})
        return True

    # --- MarketSource ---------------------------------------------------------------------------------------
    def milliseconds(self) -> int:
        """The market's now: the injected clock (tests), else the later of the local clock and the venue's time as
        observed in stored trades (extrapolated), so a venue whose market runs ahead of the wall clock (the twin at
        --speed > 1) is followed; on a real exchange the local clock wins except for clock skew."""
        if self._clock:
            return int(self._clock())
        local = int(self.exchange.milliseconds())
        if self._venue_ts is None:
            return local
        return max(local, self._venue_ts + int((self._monotonic() - self._venue_at) * 1000))

    def observe(self, ts_ms: int) -> None:
        """Note a market timestamp just received (a stored trade); the clock never moves backwards."""
        if self._venue_ts is None or ts_ms > self._venue_ts + int((self._monotonic() - self._venue_at) * 1000):
            self._venue_ts, self._venue_at = int(ts_ms), self._monotonic()

    def load_markets(self) -> dict[str, Any]:
        """Load (once) the exchange's markets, with retries."""
        return self._call("load_markets", self.exchange.load_markets)

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market structure of a symbol; raises SourceError naming an unknown symbol."""
        self.load_markets()
        return self._call(f"market({symbol})", self.exchange.market, symbol)

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    limit: int | None = None) -> list[list[float]]:
        """Candles from `since`, paging by the exchange's maximum page until `limit` rows or the data ends."""
        self.load_markets()
        step = timeframe_ms(timeframe)
        if since is None:
            return self._call(f"fetch_ohlcv({symbol}, {timeframe})", self.exchange.fetch_ohlcv, symbol, timeframe,
                              None, min(limit or self.ohlcv_page_limit, self.ohlcv_page_limit))
        out: list[list[float]] = []
        cursor = since
        remaining = limit if limit is not None else self.ohlcv_page_limit
        while remaining > 0:
            ask = min(remaining, self.ohlcv_page_limit)
            page = self._call(f"fetch_ohlcv({symbol}, {timeframe}, since={cursor})", self.exchange.fetch_ohlcv,
                              symbol, timeframe, cursor, ask)
            if not page:
                break
            out.extend(page)
            remaining -= len(page)
            last = page[-1][0]
            if len(page) < ask or not isinstance(last, (int, float)) or last + step <= cursor:
                break
            cursor = int(last) + step
        return out

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Public trades (taker side) from `since`; one request (Binance: aggTrades within one hour)."""
        self.load_markets()
        return self._call(f"fetch_trades({symbol}, since={since})", self.exchange.fetch_trades, symbol, since, limit)

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """An order book snapshot, best levels first."""
        self.load_markets()
        return self._call(f"fetch_order_book({symbol})", self.exchange.fetch_order_book, symbol, limit)

    def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        """The current (next) funding rate of a perpetual, with mark and index price."""
        self.load_markets()
        return self._call(f"fetch_funding_rate({symbol})", self.exchange.fetch_funding_rate, symbol)

    def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                   limit: int | None = None) -> list[dict[str, Any]]:
        """Settled funding rates from `since`, oldest first."""
        self.load_markets()
        return self._call(f"fetch_funding_rate_history({symbol}, since={since})",
                          self.exchange.fetch_funding_rate_history, symbol, since, limit)


def build_ccxt_exchange(exchange_id: str, options: Mapping[str, Any] | None = None, *, base_url: str = "",
                        pro: bool = False, credentials: Mapping[str, str] | None = None,
                        ws_compress: bool = False) -> Any:
    """Build the real ccxt class (or its ccxt.pro websocket class) for an id; raises naming an unknown id.

    base_url (e.g. the exchange twin's) rewrites every REST and websocket URL; credentials (apiKey, secret) only for
    private streams and orders. ws_compress offers permessage-deflate on websockets (ccxt's default; off here: it
    costs CPU on every frame at both ends, and market-data frames are small). Binance's websocket client is
    ccxt.pro's with a direct parse for public trade events (engine/data/binance_trades.py).
    """
    import ccxt

    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"source: unknown ccxt exchange id {exchange_id!r}")
    config: dict[str, Any] = {"enableRateLimit": True}
    if exchange_id.startswith("binance"):
        # Only the market types this desk trades: spot and USD-M perpetuals (skips COIN-M and options on load).
        config["options"] = {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False,
                             "fetchMargins": False}
    if options:
        config.setdefault("options", {}).update(dict(options))
    if credentials:
        config.update(credentials)
    if pro:
        import ccxt.pro

        if exchange_id not in ccxt.pro.exchanges:
            raise ValueError(f"exchange.id: {exchange_id!r} has no websocket client in ccxt.pro")
        if exchange_id == "binance":
            from engine.data.binance_trades import binance_stream_class

            exchange = binance_stream_class()(config)
        else:
            exchange = getattr(ccxt.pro, exchange_id)(config)
        exchange.options.setdefault("ws", {})["compress"] = 15 if ws_compress else 0
    else:
        exchange = getattr(ccxt, exchange_id)(config)
    if base_url:
        from engine.data.ccxt_urls import point_at

        point_at(exchange, base_url)
    return exchange
