"""A ccxt.pro Binance client with a direct path for the one hot message shape: the public spot trade event.

Why: at tens of thousands of trades per second the engine's stream ingest is bound by ccxt.pro's generic handling
of each trade message (py-spy in benchmarks/bench_stream.py): `handle_message` builds a table of ~35 bound methods
per message to route it, `handle_trade` resolves the market by id and url type, and `parse_ws_trade` ->
`parse_trade` -> `safe_market` -> `safe_trade` build the unified trade generically. For Binance's public spot
`trade` event, whose every field is known, the message is routed straight to the trade handler, its market comes
from a per-(id, url type) cache of ccxt's own `safe_market` answer (reset whenever the markets are reloaded), and
the unified trade is built directly: the same keys and values as ccxt's own parse
(tests/data/test_binance_trade_parse.py compares both on random and edge-case events); the cost is the exact decimal
product rounded once to a float, as ccxt's `Precise` string product followed by `float()` is; `datetime` is ccxt's
own `iso8601`, cached per second. Any other event (user-data executions, futures trades, unknown fields, unexpected
types) goes to ccxt's parse unchanged. The trade then goes into ccxt's own trade cache and resolves ccxt's own
futures exactly as `handle_trade` does. Everything else about the client is ccxt.pro's.
"""

from __future__ import annotations

from decimal import Context, Decimal
from functools import lru_cache
from typing import Any

# exact products of two Binance decimal strings (at most ~40 significant digits): no rounding before float()
_EXACT = Context(prec=200)

# the fields of a public spot trade event (b/a: buyer/seller order ids, still sent by some Binance deployments)
_PUBLIC_TRADE_FIELDS = frozenset({"e", "E", "s", "t", "p", "q", "T", "m", "M", "b", "a"})


@lru_cache(maxsize=1)
def binance_stream_class() -> type:
    """ccxt.pro.binance with the direct public-trade parse (built once, on first use: importing ccxt.pro is slow)."""
    import ccxt.pro
    from ccxt.async_support.base.ws.cache import ArrayCache

    base = ccxt.pro.binance
    multiply = _EXACT.multiply
    iso8601 = base.iso8601

    class StreamingBinance(base):  # type: ignore[misc,valid-type]
        """ccxt.pro.binance; `parse_ws_trade` takes a direct path for public spot trade events."""

        _second_prefix: tuple[int, str] = (-1, "")
        _trade_markets: tuple[Any, dict[tuple[str, bool], Any]] = (None, {})

        def handle_message(self, client: Any, message: Any) -> None:
            """Public spot trade events straight to the trade handler; everything else through ccxt's routing."""
            if type(message) is dict and message.get("e") == "trade" and _PUBLIC_TRADE_FIELDS.issuperset(message):
                self.handle_trade(client, message)
            else:
                super().handle_message(client, message)

        def handle_trade(self, client: Any, message: dict[str, Any]) -> None:
            """ccxt's trade handling, with the market of a public trade taken from a cache of ccxt's own answer."""
            if message.get("e") != "trade" or not isinstance(message.get("s"), str) or \
                    not isinstance(self.trades, dict):
                return super().handle_trade(client, message)
            market = self._trade_market(message["s"], self.is_spot_url(client))
            symbol = market["symbol"]
            trade = self.parse_ws_trade(message, market)
            trades = self.trades.get(symbol)
            if trades is None:
                trades = ArrayCache(self.safe_integer(self.options, "tradesLimit", 1000))
            trades.append(trade)
            self.trades[symbol] = trades
            client.resolve(trades, "trade::" + symbol)

        def _trade_market(self, market_id: str, spot: bool) -> Any:
            """ccxt's `safe_market` for a trade's market id and url type, cached until the markets change."""
            markets, cache = self._trade_markets
            if markets is not self.markets_by_id:
                markets, cache = self.markets_by_id, {}
                self._trade_markets = (markets, cache)
            found = cache.get((market_id, spot))
            if found is None:
                found = cache[(market_id, spot)] = self.safe_market(market_id, None, None,
                                                                     "spot" if spot else "contract")
            return found

        def parse_ws_trade(self, trade: dict[str, Any], market: dict[str, Any] | None = None) -> dict[str, Any]:
            """The unified trade for a public spot trade event, equal to ccxt's; ccxt's parse for anything else."""
            if self.number is not float or not _direct(trade, market):  # ccxt's parse for other number types
                return super().parse_ws_trade(trade, market)
            ts: int = trade["T"]
            price, amount = trade["p"], trade["q"]
            return {
                "info": trade,
                "timestamp": ts,
                "datetime": self._iso(ts),
                "symbol": market["symbol"],  # type: ignore[index]
                "id": str(trade["t"]),
                "order": None,
                "type": None,
                "side": "sell" if trade["m"] else "buy",
                "takerOrMaker": None,
                "price": float(price),
                "amount": float(amount),
                "cost": float(multiply(Decimal(price), Decimal(amount))),
                "fee": {"cost": None, "currency": None},
                "fees": [],
            }

        def _iso(self, ts: int) -> str:
            """ccxt's iso8601 for a millisecond time, with the date-time part computed once per second."""
            second, ms = divmod(ts, 1000)
            cached_second, prefix = self._second_prefix
            if second != cached_second:
                prefix = iso8601(second * 1000)[:-4]  # 'YYYY-MM-DDTHH:MM:SS.000Z' -> without '000Z'
                self._second_prefix = (second, prefix)
            return f"{prefix}{ms:03d}Z"

    return StreamingBinance


def _direct(trade: Any, market: Any) -> bool:
    """Whether an event is a public spot trade of a known spot market with the field types Binance sends."""
    if not isinstance(trade, dict) or trade.get("e") != "trade" or not isinstance(market, dict):
        return False
    if market.get("type") != "spot" or market.get("id") != trade.get("s") or not _PUBLIC_TRADE_FIELDS.issuperset(trade):
        return False
    ts, tid, m = trade.get("T"), trade.get("t"), trade.get("m")
    return (type(ts) is int and 0 <= ts <= 8_640_000_000_000_000 and type(tid) is int and type(m) is bool
            and _decimal_text(trade.get("p")) and _decimal_text(trade.get("q")))


def _decimal_text(value: Any) -> bool:
    """A plain non-negative decimal string such as '60000.10' (ccxt's parse handles anything else)."""
    if type(value) is not str or not value:
        return False
    head, _, tail = value.partition(".")
    return head.isdigit() and (tail == "" or tail.isdigit()) and head.isascii() and tail.isascii()
