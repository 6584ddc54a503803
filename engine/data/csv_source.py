"""CsvSource: a MarketSource over user CSV files in the shared-data layout (see ../shared/data/README.md).

Formats (UTC, `timestamp` in epoch ms): ohlcv `timestamp,open,high,low,close,volume`; trades
`timestamp,id,side,price,amount` (side = taker side); funding `timestamp,funding_rate`; quotes
`timestamp,[local_ts,]bid,bid_size,ask,ask_size`. `csv:<path>` may name one file or a folder holding any of
ohlcv/, trades/, funding/, quotes/ (or files directly). File names say venue, symbol and timeframe, e.g.
`binance_BTCUSDT_5m_20230102-20230209.csv`, `BTC-USDT_1m.csv`, `binanceusdm_XRPUSDT-PERP_1h_....csv`.

Rows are passed on as read, in file order: unparseable fields stay as their text so validation quarantines them with
a reason instead of this reader dropping them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMEFRAME = re.compile(r"^\d+[smhdwM]$")
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
KINDS = ("ohlcv", "trades", "funding", "quotes")
_HEADERS = {
    "ohlcv": ("timestamp", "open", "high", "low", "close", "volume"),
    "trades": ("timestamp", "id", "side", "price", "amount"),
    "funding": ("timestamp", "funding_rate"),
}


class CsvFormatError(ValueError):
    """A CSV file does not have the expected header or name."""


def parse_symbol(token: str) -> str:
    """A ccxt unified symbol from a file-name token: BTCUSDT -> BTC/USDT, XRPUSDT-PERP -> XRP/USDT:USDT."""
    text = token.upper()
    perp = text.endswith("-PERP") or text.endswith("_PERP")
    if perp:
        text = text[:-5]
    for sep in ("-", "_", "/"):
        if sep in text:
            base, quote = text.split(sep, 1)
            break
    else:
        quote = next((q for q in _QUOTES if text.endswith(q) and len(text) > len(q)), "")
        if quote:
            base = text[: -len(quote)]
        elif perp and text.isalpha():  # FTX-style BTC-PERP: a USD-margined perpetual
            base, quote = text, "USD"
        else:
            raise CsvFormatError(f"symbol: cannot split {token!r} into base and quote (known quotes: {_QUOTES})")
    if not (base.isalnum() and quote.isalnum() and base[:1].isalpha() and quote[:1].isalpha()):
        raise CsvFormatError(f"symbol: {token!r} is not a symbol")
    return f"{base}/{quote}:{quote}" if perp else f"{base}/{quote}"


def symbol_token(symbol: str) -> str:
    """The file-name token of a unified symbol: BTC/USDT -> BTCUSDT, BTC/USDT:USDT -> BTCUSDT-PERP."""
    base_quote, _, settle = symbol.partition(":")
    return base_quote.replace("/", "") + ("-PERP" if settle else "")


@dataclass(frozen=True)
class CsvFile:
    """One recognised file: its kind, symbol, timeframe (ohlcv only) and venue if named."""

    path: Path
    kind: str
    symbol: str
    timeframe: str | None
    venue: str | None


def _classify(path: Path, kind_hint: str | None) -> CsvFile:
    """Work out kind (from folder or header), symbol and timeframe (from the file name)."""
    with path.open(newline="") as fh:
        header = tuple(h.strip().lower() for h in next(csv.reader(fh), []))
    kind = kind_hint
    if kind is None:
        kind = next((k for k, cols in _HEADERS.items() if header[: len(cols)] == cols), None)
        if kind is None and header[:1] == ("timestamp",) and "bid" in header and "ask" in header:
            kind = "quotes"
    if kind is None:
        raise CsvFormatError(f"{path}: header {','.join(header)!r} matches none of the formats {KINDS}")
    if kind in _HEADERS and header[: len(_HEADERS[kind])] != _HEADERS[kind]:
        raise CsvFormatError(f"{path}: expected header {','.join(_HEADERS[kind])}, got {','.join(header)}")
    tokens = [t for t in path.stem.split("_") if t]
    timeframe = next((t for t in tokens if _TIMEFRAME.match(t)), None)
    symbol, venue = None, None
    # single tokens first (BTCUSDT, BTC-USDT, XRPUSDT-PERP), then adjacent pairs (BTC_USDT)
    candidates = [(i, t) for i, t in enumerate(tokens)] + [
        (i, f"{tokens[i]}_{tokens[i + 1]}") for i in range(len(tokens) - 1)
        if tokens[i].isalpha() and tokens[i + 1].upper() in _QUOTES]
    for i, token in candidates:
        if token == timeframe or token.lower() in KINDS or token.lower() in ("bbo", "quotes"):
            continue
        try:
            symbol = parse_symbol(token)
            venue = tokens[0] if i > 0 else None
            break
        except CsvFormatError:
            continue
    if symbol is None:
        raise CsvFormatError(f"{path.name}: no symbol in the file name (e.g. BTCUSDT_1m.csv)")
    if kind == "funding" and ":" not in symbol:  # funding only exists for perpetuals
        symbol = f"{symbol}:{symbol.split('/')[1]}"
    if kind == "ohlcv" and timeframe is None:
        raise CsvFormatError(f"{path.name}: an OHLCV file name must include its timeframe (e.g. BTCUSDT_1m.csv)")
    return CsvFile(path, kind, symbol, timeframe if kind == "ohlcv" else None, venue)


def _cell(text: str) -> Any:
    """A number when the text is one (ints stay ints), else the text itself for validation to reject."""
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s


class CsvSource:
    """A MarketSource over CSV files; `id` is "csv" unless given (it becomes the `exchange` column)."""

    ohlcv_page_limit = None  # a file is read in one page

    def __init__(self, path: str | Path, exchange_id: str = "csv", now_ms: int | None = None) -> None:
        root = Path(path).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"csv source: {root} does not exist")
        self.id = exchange_id
        self.root = root
        self.files: list[CsvFile] = []
        candidates = [(root, None)] if root.is_file() else [
            (p, p.parent.name if p.parent.name in KINDS else None) for p in sorted(root.rglob("*.csv"))]
        for file, hint in candidates:
            self.files.append(_classify(file, hint))
        if not self.files:
            raise CsvFormatError(f"csv source: no .csv files under {root}")
        self._now = now_ms
        self._cache: dict[Path, list[list[Any]]] = {}

    def _rows(self, kind: str, symbol: str, timeframe: str | None = None) -> list[list[Any]]:
        matches = [f for f in self.files if f.kind == kind and f.symbol == symbol
                   and (timeframe is None or f.timeframe == timeframe)]
        if not matches:
            have = sorted({(f.kind, f.symbol, f.timeframe or "") for f in self.files})
            raise KeyError(f"csv source: no {kind} file for {symbol} {timeframe or ''} (have {have})")
        rows: list[list[Any]] = []
        for f in matches:
            if f.path not in self._cache:
                with f.path.open(newline="") as fh:
                    reader = csv.reader(fh)
                    next(reader, None)
                    self._cache[f.path] = [[_cell(c) for c in row] for row in reader if row]
            rows.extend(self._cache[f.path])
        return rows

    def series(self) -> list[tuple[str, str, str | None]]:
        """(kind, symbol, timeframe) of every file, for `data pull --source csv:...` without --symbols."""
        return sorted({(f.kind, f.symbol, f.timeframe) for f in self.files}, key=lambda x: (x[0], x[1], x[2] or ""))

    def milliseconds(self) -> int:
        """Now (wall clock unless fixed): every bar in a file counts as closed once now passes it."""
        from engine.clock import now_ms

        return self._now if self._now is not None else now_ms()

    def market(self, symbol: str) -> dict[str, Any]:
        """A minimal ccxt-shaped market for a symbol found in the files."""
        if not any(f.symbol == symbol for f in self.files):
            raise KeyError(f"csv source: unknown symbol {symbol!r}")
        base, _, rest = symbol.partition("/")
        quote, _, settle = rest.partition(":")
        return {"symbol": symbol, "base": base, "quote": quote, "settle": settle or None,
                "type": "swap" if settle else "spot", "precision": {"amount": None, "price": None},
                "limits": {"amount": {"min": None}, "cost": {"min": None}}}

    @staticmethod
    def _after(rows: list[list[Any]], since: int | None, limit: int | None) -> list[list[Any]]:
        """Rows (file order) with ts >= since; rows whose ts is unreadable are kept so they reach quarantine."""
        out = [r for r in rows if since is None or not isinstance(r[0], (int, float)) or r[0] >= since]
        return out[:limit] if limit else out

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                    limit: int | None = None) -> list[list[Any]]:
        """OHLCV rows of the symbol's file for that timeframe, from `since`, in file order."""
        return [list(r[:6]) + [None] * (6 - len(r[:6])) for r in
                self._after(self._rows("ohlcv", symbol, timeframe), since, limit)]

    def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Trades as ccxt trade dicts (taker side), from `since`."""
        out = []
        for r in self._after(self._rows("trades", symbol), since, limit):
            r = r + [None] * (5 - len(r))
            ts, trade_id, side, price, amount = r[:5]
            cost = price * amount if isinstance(price, (int, float)) and isinstance(amount, (int, float)) else None
            out.append({"id": None if trade_id in (None, "") else str(trade_id), "timestamp": ts, "symbol": symbol,
                        "side": side.strip().lower() if isinstance(side, str) else side, "price": price,
                        "amount": amount, "cost": cost})
        return out

    def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """The last best bid/ask of the symbol's quotes file as a one-level book."""
        rows = self._rows("quotes", symbol)
        last = rows[-1]
        values = last[2:6] if len(last) >= 6 else last[1:5]
        bid, bid_size, ask, ask_size = values
        return {"symbol": symbol, "bids": [[bid, bid_size]], "asks": [[ask, ask_size]], "timestamp": last[0],
                "nonce": None}

    def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        """The last funding row of the symbol's file."""
        ts, rate = (self._rows("funding", symbol)[-1] + [None, None])[:2]
        return {"symbol": symbol, "fundingRate": rate, "timestamp": ts, "fundingTimestamp": ts,
                "markPrice": None, "indexPrice": None}

    def fetch_funding_rate_history(self, symbol: str, since: int | None = None,
                                   limit: int | None = None) -> list[dict[str, Any]]:
        """Funding rows from `since` as ccxt funding-history dicts."""
        return [{"symbol": symbol, "fundingRate": (r + [None])[1], "timestamp": r[0]}
                for r in self._after(self._rows("funding", symbol), since, limit)]
