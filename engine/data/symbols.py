"""Symbol naming in ccxt's unified form: the perpetual of a spot pair, the base asset."""

from __future__ import annotations


def perp_symbol(symbol: str) -> str:
    """The linear perpetual of a spot symbol in ccxt's unified form (BTC/USDT -> BTC/USDT:USDT)."""
    if "/" not in symbol:
        raise ValueError(f"symbol: expected BASE/QUOTE, got {symbol!r}")
    if ":" in symbol:
        return symbol
    quote = symbol.split("/", 1)[1]
    return f"{symbol}:{quote}"


def base_asset(symbol: str) -> str:
    """The base currency of a symbol (BTC for BTC/USDT and BTC/USDT:USDT)."""
    return symbol.split("/", 1)[0]
