"""Regenerate the Binance recordings in this folder (deterministic; run `.venv/bin/python tests/recordings/binance/_generate.py`).

The JSON bodies follow Binance's documented wire formats exactly (strings for decimals, kline arrays of 12 fields,
aggTrades with a/p/q/f/l/T/m(/M), depth with lastUpdateId, premiumIndex and fundingRate objects). exchangeInfo is
trimmed to BTCUSDT and ETHUSDT for spot and USD-M futures. Prices are synthetic but realistic (a seeded random walk).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC
MIN = 60_000


def _fmt(x: float, nd: int = 2) -> str:
    return f"{x:.{nd}f}"


def _spot_symbol(sym: str, base: str) -> dict:
    return {
        "symbol": sym, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": "USDT",
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000" if base == "BTC" else "0.00010000",
             "maxQty": "9000.00000000", "stepSize": "0.00001000" if base == "BTC" else "0.00010000"},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "83.50000000",
             "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT", "MARGIN", "TRD_GRP_004"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _fapi_symbol(sym: str, base: str) -> dict:
    return {
        "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": ["PoW"], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": "100"},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"], "permissionSets": ["GRID", "COPY"],
    }


def _klines(rng: random.Random, start: int, n: int, price: float) -> list[list]:
    rows = []
    for i in range(n):
        o = price
        c = max(1.0, o * (1 + rng.gauss(0, 0.0008)))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.0003)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.0003)))
        v = abs(rng.gauss(12, 4))
        t = start + i * MIN
        n_trades = int(v * 90)
        rows.append([t, _fmt(o), _fmt(h), _fmt(lo), _fmt(c), _fmt(v, 5), t + MIN - 1, _fmt(v * c, 8), n_trades,
                     _fmt(v * 0.52, 5), _fmt(v * 0.52 * c, 8), "0"])
        price = c
    return rows


def main() -> None:
    rng = random.Random(20240101)
    server_time = T0 + 120 * MIN + 30_000
    spot_info = {"timezone": "UTC", "serverTime": server_time,
                 "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                 "limit": 6000},
                                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                                 "limit": 61000}],
                 "exchangeFilters": [], "symbols": [_spot_symbol("BTCUSDT", "BTC"), _spot_symbol("ETHUSDT", "ETH")]}
    fapi_info = {"timezone": "UTC", "serverTime": server_time, "futuresType": "U_MARGINED",
                 "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                 "limit": 2400}],
                 "exchangeFilters": [],
                 "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                 "symbols": [_fapi_symbol("BTCUSDT", "BTC"), _fapi_symbol("ETHUSDT", "ETH")]}
    _write("exchangeInfo.json", [
        {"method": "GET", "path": "/api/v3/exchangeInfo", "params": {}, "status": 200, "body": spot_info},
        {"method": "GET", "path": "/fapi/v1/exchangeInfo", "params": {}, "status": 200, "body": fapi_info},
    ])

    # Spot BTCUSDT 1m: 121 bars from T0 (the last one still open at server_time), served in pages of 50.
    bars = _klines(rng, T0, 121, 42_300.0)
    entries = []
    for page_start in range(0, 121, 50):
        entries.append({"method": "GET", "path": "/api/v3/klines",
                        "params": {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0 + page_start * MIN,
                                   "limit": 50},
                        "status": 200, "body": bars[page_start:page_start + 50]})
    # The same series as one 1000-limit request (the default page size), and an empty answer after the end.
    entries.append({"method": "GET", "path": "/api/v3/klines",
                    "params": {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 1000},
                    "status": 200, "body": bars})
    perp = _klines(rng, T0, 30, 42_350.0)
    entries.append({"method": "GET", "path": "/fapi/v1/klines",
                    "params": {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0}, "status": 200, "body": perp})
    _write("klines.json", entries)

    # aggTrades: 40 trades in the first hour, none in the second.
    trades, t, price = [], T0 + 1_250, 42_300.0
    for i in range(40):
        t += rng.randint(20, 9_000)
        price *= 1 + rng.gauss(0, 0.0001)
        first = 3_100_000_000 + i * 3
        trades.append({"a": 2_900_000_000 + i, "p": _fmt(price), "q": _fmt(abs(rng.gauss(0.05, 0.04)) + 0.0001, 5),
                       "f": first, "l": first + rng.randint(0, 2), "T": t, "m": rng.random() < 0.48, "M": True})
    _write("aggTrades.json", [
        {"method": "GET", "path": "/api/v3/aggTrades", "params": {"symbol": "BTCUSDT", "startTime": T0},
         "status": 200, "body": trades},
        {"method": "GET", "path": "/api/v3/aggTrades", "params": {"symbol": "BTCUSDT", "startTime": T0 + 3_600_000},
         "status": 200, "body": []},
    ])

    # depth: spot (no timestamp on the wire) and USD-M (E/T timestamps).
    mid = 42_412.35
    bids = [[_fmt(mid - 0.01 - i * 0.37), _fmt(abs(rng.gauss(0.8, 0.6)) + 0.001, 5)] for i in range(10)]
    asks = [[_fmt(mid + 0.01 + i * 0.41), _fmt(abs(rng.gauss(0.8, 0.6)) + 0.001, 5)] for i in range(10)]
    fbids = [[f"{(424523 - i) / 10:.1f}", _fmt(abs(rng.gauss(2, 1)) + 0.001, 3)] for i in range(10)]
    fasks = [[f"{(424524 + i) / 10:.1f}", _fmt(abs(rng.gauss(2, 1)) + 0.001, 3)] for i in range(10)]
    _write("depth.json", [
        {"method": "GET", "path": "/api/v3/depth", "params": {"symbol": "BTCUSDT"}, "status": 200,
         "body": {"lastUpdateId": 41_283_744_012, "bids": bids, "asks": asks}},
        {"method": "GET", "path": "/fapi/v1/depth", "params": {"symbol": "BTCUSDT"}, "status": 200,
         "body": {"lastUpdateId": 3_601_884_291_337, "E": server_time - 7, "T": server_time - 12,
                  "bids": fbids, "asks": fasks}},
    ])

    # premiumIndex (current funding) and fundingRate history (8-hourly settlements).
    _write("premiumIndex.json", [
        {"method": "GET", "path": "/fapi/v1/premiumIndex", "params": {"symbol": "BTCUSDT"}, "status": 200,
         "body": {"symbol": "BTCUSDT", "markPrice": "42452.71000000", "indexPrice": "42431.86478261",
                  "estimatedSettlePrice": "42419.03264410", "lastFundingRate": "0.00010312",
                  "interestRate": "0.00010000", "nextFundingTime": T0 + 8 * 3_600_000, "time": server_time}},
    ])
    history = []
    for i in range(9):
        ts = T0 - (9 - i) * 8 * 3_600_000
        history.append({"symbol": "BTCUSDT", "fundingTime": ts, "fundingRate": f"{rng.gauss(0.0001, 0.00005):.8f}",
                        "markPrice": f"{42_000 + rng.gauss(0, 300):.8f}"})
    _write("fundingRate.json", [
        {"method": "GET", "path": "/fapi/v1/fundingRate", "params": {"symbol": "BTCUSDT", "startTime": T0 - 72 * 3_600_000},
         "status": 200, "body": history},
        {"method": "GET", "path": "/fapi/v1/fundingRate", "params": {"symbol": "BTCUSDT"}, "status": 200,
         "body": []},
    ])


def _write(name: str, entries: list[dict]) -> None:
    (HERE / name).write_text(json.dumps(entries, indent=1) + "\n")


if __name__ == "__main__":
    main()
