"""The exchange twin: a local server speaking Binance's spot and USD-M REST and websocket APIs over the simulator.

`quantdesk venue serve` runs it; an unmodified `ccxt.binance` / `ccxt.pro.binance` works against it once its URLs are
pointed at the twin (`engine.venue.urls.twin_urls`). Modules: signing (HMAC keys and Binance's auth errors), markets
(symbol ids and exchangeInfo), feed (depth with update ids, trades, klines, mark price), books (the twin's SQLite
ledger), matching (fills against the simulated book), rest_public, rest_private, ws, faults, server.
"""
