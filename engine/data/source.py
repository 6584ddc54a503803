"""The MarketSource interface every data source satisfies, in ccxt's unified shapes.

`SimulatedExchange`, `CcxtSource` and `CsvSource` all implement it, so one ingest path serves every source and the
paper broker can fill against any of them. Shapes (exactly ccxt's unified structures):

- fetch_ohlcv -> [[ts_ms, open, high, low, close, volume], ...] oldest first, candle open time
- fetch_trades -> [{"id", "timestamp", "datetime", "symbol", "side" (taker side), "price", "amount", "cost"}, ...]
- fetch_order_book -> {"symbol", "bids": [[price, amount], ...] best first, "asks": [...], "timestamp", "datetime",
  "nonce"}
- fetch_funding_rate -> {"symbol", "fundingRate", "markPrice", "indexPrice", "timestamp", "fundingTimestamp", ...}
- fetch_funding_rate_history -> [{"symbol", "fundingRate", "timestamp", "datetime"}, ...]
- market(symbol) -> ccxt market dict with "type" (spot|swap), "precision" {"amount","price"} and
  "limits" {"amount": {"min"}, "cost": {"min"}}
Perpetual symbols use ccxt's unified form, e.g. "BTC/USDT:USDT".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class MarketSource(Protocol):
    """A venue's market data in ccxt's unified shapes."""

    id: str  # stored as the `exchange` column, e.g. "sim" or "binance"

    def milliseconds(self) -> int:
        """The source's current time in epoch ms (simulated time for the simulator)."""
        ...

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market structure (precision, limits, type) for a symbol."""
        ...

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    limit: int | None = None) -> list[list[float]]:
        """Closed and current candles, oldest first."""
        ...

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Public trades with taker side, oldest first."""
        ...

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """An order book snapshot, best levels first."""
        ...

    def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        """The current funding rate of a perpetual."""
        ...

    def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                   limit: int | None = None) -> list[dict[str, Any]]:
        """Past funding rates of a perpetual, oldest first."""
        ...


@dataclass(frozen=True)
class FeedPoint:
    """One observation of a macro, sentiment or on-chain series, with the time it became known."""

    series: str
    ts: int
    published_ts: int
    value: float


@runtime_checkable
class FeedSource(Protocol):
    """A macro, sentiment or on-chain feed."""

    feed: str  # macro | sentiment | onchain

    def fetch_feed(self, since: int | None = None, until: int | None = None) -> list[FeedPoint]:
        """Observations in [since, until), oldest first."""
        ...
