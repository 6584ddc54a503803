"""The twin's listings: Binance market ids for the simulator's symbols, and exchangeInfo in Binance's shapes.

Spot `BTC/USDT` is `BTCUSDT` on /api; the perpetual `BTC/USDT:USDT` is `BTCUSDT` on /fapi (same id, other API), so
every lookup is by (market, id) with market "spot" or "futures". Filters carry the simulator's tick, step and
min-notional, so ccxt's parsed market has the same precision and limits as `sim`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.data.simulator.markets import Instrument
from engine.venue.errors import VenueError, bad_param, bad_symbol

SPOT, FUTURES = "spot", "futures"


@dataclass(frozen=True)
class Listing:
    """One market of the twin: the simulator's instrument under its Binance id on one API."""

    market: str  # spot | futures
    id: str  # BTCUSDT
    symbol: str  # the simulator's (and ccxt's unified) symbol
    inst: Instrument

    @property
    def base(self) -> str:
        """Base asset, e.g. BTC."""
        return self.inst.underlying.base

    @property
    def quote(self) -> str:
        """Quote (and for perps, margin) asset."""
        return "USDT"

    @property
    def taker(self) -> float:
        """Taker fee rate (Binance's defaults: 0.1 % spot, 0.05 % USD-M)."""
        return 0.0005 if self.market == FUTURES else 0.001

    @property
    def maker(self) -> float:
        """Maker fee rate (0.1 % spot, 0.02 % USD-M)."""
        return 0.0002 if self.market == FUTURES else 0.001


def fmt(value: float, decimals: int = 8) -> str:
    """A decimal string the way Binance prints numbers (fixed point, no exponent)."""
    return f"{value:.{decimals}f}"


class Listings:
    """All listings, looked up by (market, id) or by unified symbol."""

    def __init__(self, instruments: dict[str, Instrument]) -> None:
        self._by_id: dict[tuple[str, str], Listing] = {}
        self._by_symbol: dict[str, Listing] = {}
        for inst in instruments.values():
            market = FUTURES if inst.is_perp else SPOT
            listing = Listing(market, f"{inst.underlying.base}USDT", inst.symbol, inst)
            self._by_id[(market, listing.id)] = listing
            self._by_symbol[inst.symbol] = listing

    def all(self, market: str | None = None) -> list[Listing]:
        """Listings of one API (or all), in a stable order."""
        return [v for v in self._by_symbol.values() if market is None or v.market == market]

    def get(self, market: str, market_id: str | None) -> Listing:
        """The listing for a request's `symbol` parameter, or Binance's -1102/-1121."""
        if not market_id:
            raise bad_param("symbol")
        found = self._by_id.get((market, market_id.upper()))
        if found is None:
            raise bad_symbol()
        return found

    def by_symbol(self, symbol: str) -> Listing:
        """The listing of a unified symbol."""
        if symbol not in self._by_symbol:
            raise VenueError(-1121, "Invalid symbol.")
        return self._by_symbol[symbol]


def _spot_symbol(listing: Listing) -> dict[str, object]:
    inst = listing.inst
    pd, ad = inst.price_decimals, inst.amount_decimals
    return {
        "symbol": listing.id, "status": "TRADING", "baseAsset": listing.base, "baseAssetPrecision": 8,
        "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(inst.price_tick, pd), "maxPrice": "1000000.00",
             "tickSize": fmt(inst.price_tick, pd)},
            {"filterType": "LOT_SIZE", "minQty": fmt(inst.amount_step, ad), "maxQty": "9000000",
             "stepSize": fmt(inst.amount_step, ad)},
            {"filterType": "NOTIONAL", "minNotional": fmt(inst.min_cost, 2), "applyMinToMarket": True,
             "maxNotional": "9000000.00", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def _futures_symbol(listing: Listing) -> dict[str, object]:
    inst = listing.inst
    pd, ad = inst.price_decimals, inst.amount_decimals
    return {
        "symbol": listing.id, "pair": listing.id, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": listing.base, "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": pd, "quantityPrecision": ad, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(inst.price_tick, pd), "maxPrice": "4529764",
             "tickSize": fmt(inst.price_tick, pd)},
            {"filterType": "LOT_SIZE", "minQty": fmt(inst.amount_step, ad), "maxQty": "1000000",
             "stepSize": fmt(inst.amount_step, ad)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(inst.amount_step, ad), "maxQty": "1000000",
             "stepSize": fmt(inst.amount_step, ad)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(inst.min_cost, 0 if inst.min_cost >= 1 else 2)},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def exchange_info(listings: Listings, market: str, server_time: int) -> dict[str, object]:
    """GET /api/v3/exchangeInfo or /fapi/v1/exchangeInfo."""
    limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
              {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}]
    body: dict[str, object] = {"timezone": "UTC", "serverTime": server_time, "rateLimits": limits,
                               "exchangeFilters": []}
    if market == SPOT:
        body["symbols"] = [_spot_symbol(x) for x in listings.all(SPOT)]
    else:
        body["futuresType"] = "U_MARGINED"
        body["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        body["symbols"] = [_futures_symbol(x) for x in listings.all(FUTURES)]
    return body


def parse_float(params: dict[str, str], name: str, required: bool = True) -> float | None:
    """A positive decimal request parameter, or Binance's -1102 / -1100."""
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise bad_param(name)
        return None
    try:
        value = float(raw)
    except ValueError:
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                f"'^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None
    if not value > 0:
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


def parse_int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    """An integer request parameter (None when absent), or Binance's -1100."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'.") from None
