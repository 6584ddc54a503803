"""CsvSource: a MarketSource over user data files (CSV or Parquet), as downloaded from anywhere.

Files are read by engine.data.csv_format: any common delimiter, a UTF-8 BOM, columns in any order under common
aliases (time, date, open_time, Open, vol, qty, ...), timestamps in s / ms / us / ns or ISO 8601, detected per file.
The kind (ohlcv, trades, funding, quotes) comes from the folder (ohlcv/, trades/, ...) or the columns. The symbol and
timeframe come from the file name when it says them (`binance_BTCUSDT_5m_20230102-20230209.csv`, `BTC-USDT_1m.csv`,
`binanceusdm_XRPUSDT-PERP_1h_....csv`); otherwise `symbol` (`data pull --symbols X`) names the symbol and an OHLCV
file's timeframe is its most common bar spacing.

Nothing is dropped here: `parsed()` gives every row with its timestamp in ms or the reason it has none, for the file
import (engine.data.file_import) to store or quarantine; the MarketSource methods pass rows on in file order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.csv_format import (ALIASES, KIND_COLUMNS, FileFormatError, convert_timestamps, infer_timeframe,
                                    read_table)

_TIMEFRAME = re.compile(r"^\d+[smhdwM]$")
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
KINDS = ("ohlcv", "trades", "funding", "quotes")


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
            if quote not in _QUOTES:  # BTCUSDT-trades, BTCUSDT-1h: a file-name part, not a quote currency
                raise CsvFormatError(f"symbol: {token!r} has no known quote currency after {sep!r} ({_QUOTES})")
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
    """One recognised file: its kind, symbol, timeframe (ohlcv only), venue if named, and how its data was read."""

    path: Path
    kind: str
    symbol: str
    timeframe: str | None
    venue: str | None
    unit: str = "ms"  # timestamp unit detected in the file: s | ms | us | ns | iso8601
    delimiter: str | None = ","
    bom: bool = False
    renamed: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """How the file was read, for the import report."""
        parts = [f"{self.path.name}: {self.kind} {self.symbol}" + (f" {self.timeframe}" if self.timeframe else ""),
                 f"timestamps {self.unit}"]
        if self.delimiter is None:
            parts.append("parquet")
        elif self.delimiter != ",":
            parts.append(f"delimiter {self.delimiter!r}")
        if self.bom:
            parts.append("UTF-8 BOM stripped")
        if self.renamed:
            parts.append("columns " + ", ".join(f"{a}->{b}" for a, b in self.renamed))
        return ", ".join(parts)


@dataclass
class ParsedRows:
    """A file's rows in canonical order (ts in epoch ms, or None with the reason in `reasons`)."""

    file: CsvFile
    rows: list[list[Any]]
    reasons: list[str | None]
    raw: list[list[Any]]


def _name_tokens(path: Path) -> tuple[str | None, str | None, str | None]:
    """(symbol, timeframe, venue) as far as the file name says them."""
    tokens = [t for t in path.stem.split("_") if t]
    parts = [(i, p) for i, t in enumerate(tokens) if "-" in t for p in t.split("-") if p]  # BTCUSDT-1h-2024-01
    timeframe = next((t for t in tokens + [p for _i, p in parts] if _TIMEFRAME.match(t)), None)
    candidates = [(i, t) for i, t in enumerate(tokens)] + parts + [
        (i, f"{tokens[i]}_{tokens[i + 1]}") for i in range(len(tokens) - 1)
        if tokens[i].isalpha() and tokens[i + 1].upper() in _QUOTES]
    for i, token in candidates:
        if token == timeframe or token.lower() in KINDS or token.lower() in ("bbo", "quotes"):
            continue
        try:
            return parse_symbol(token), timeframe, (tokens[0] if i > 0 else None)
        except CsvFormatError:
            continue
    return None, timeframe, None


def _classify(path: Path, kind_hint: str | None, symbol: str | None = None
              ) -> tuple[CsvFile, list[list[Any]], list[str | None], list[list[Any]]]:
    """Read one file; work out kind, symbol and timeframe; convert its timestamps (reasons for the rejects)."""
    try:
        table = read_table(path)
    except FileFormatError as exc:
        raise CsvFormatError(str(exc)) from exc
    kind = kind_hint or table.kind()
    if kind is None:
        raise CsvFormatError(f"{path.name}: columns {', '.join(table.columns)} match none of the layouts "
                             "(ohlcv needs time/open/high/low/close[/volume]; trades time/price/amount[/side]; "
                             "funding time/funding_rate)")
    wanted = KIND_COLUMNS[kind]
    if "timestamp" not in table.columns:
        raise CsvFormatError(f"{path.name}: no timestamp column (accepted names: {', '.join(ALIASES['timestamp'])})")
    named_symbol, timeframe, venue = _name_tokens(path)
    sym = symbol or named_symbol
    if sym is None:
        raise CsvFormatError(f"{path.name}: the file name names no symbol; pass one with --symbols (e.g. BTC/USDT)")
    if kind == "funding" and ":" not in sym:  # funding only exists for perpetuals
        sym = f"{sym}:{sym.split('/')[1]}"
    ts, reasons, unit = convert_timestamps(table.column("timestamp"))
    if kind == "ohlcv" and timeframe is None:
        timeframe = infer_timeframe(ts)
        if timeframe is None:
            raise CsvFormatError(f"{path.name}: cannot tell the bar timeframe (name it in the file name, e.g. "
                                 "BTCUSDT_1h.csv)")
    cols = {c: table.column(c) for c in wanted if c in table.columns}
    if kind == "ohlcv" and "volume" not in cols:
        cols["volume"] = [0.0] * len(table.rows)  # price-only bars: volume unknown, stored as 0
    if kind == "trades":
        if "side" not in cols and "is_buyer_maker" in table.columns:  # Binance: buyer is maker -> taker sold
            cols["side"] = ["sell" if str(v).strip().lower() in ("true", "1") else "buy"
                            for v in table.column("is_buyer_maker")]
        if "id" not in cols:
            cols["id"] = [f"row{i}" for i in range(len(table.rows))]
    missing = [c for c in wanted if c not in cols and c != "timestamp" and not (kind == "quotes" and "size" in c)]
    if missing:
        raise CsvFormatError(f"{path.name}: no {', '.join(missing)} column for {kind} data")
    rows = [[t] + [cols[c][i] if c in cols else None for c in wanted[1:]] for i, t in enumerate(ts)]
    info = CsvFile(path, kind, sym, timeframe if kind == "ohlcv" else None, venue, unit, table.delimiter, table.bom,
                   tuple(table.renamed.items()))
    return info, rows, reasons, table.rows


class CsvSource:
    """A MarketSource over CSV files; `id` is "csv" unless given (it becomes the `exchange` column)."""

    ohlcv_page_limit = None  # a file is read in one page

    def __init__(self, path: str | Path, exchange_id: str = "csv", now_ms: int | None = None,
                 symbol: str | None = None) -> None:
        root = Path(path).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"csv source: {root} does not exist")
        self.id = exchange_id
        self.root = root
        self.files: list[CsvFile] = []
        self._parsed: dict[Path, ParsedRows] = {}
        candidates = [(root, None)] if root.is_file() else [
            (p, p.parent.name if p.parent.name in KINDS else None) for p in sorted(root.rglob("*"))
            if p.suffix.lower() in (".csv", ".parquet", ".pq", ".txt", ".tsv")]
        for file, hint in candidates:
            named = _name_tokens(file)[0]
            # --symbols names a single file whatever its name says, and in a folder the files whose names say none
            override = symbol if (root.is_file() or named is None) else None
            info, rows, reasons, raw = _classify(file, hint, override)
            self.files.append(info)
            self._parsed[file] = ParsedRows(info, rows, reasons, raw)
        if not self.files:
            raise CsvFormatError(f"csv source: no .csv or .parquet files under {root}")
        self._now = now_ms

    def parsed(self, kind: str, symbol: str, timeframe: str | None = None) -> list[ParsedRows]:
        """Every row of the matching files, timestamps converted (None + reason where a cell is not one)."""
        matches = [self._parsed[f.path] for f in self.files if f.kind == kind and f.symbol == symbol
                   and (timeframe is None or f.timeframe == timeframe)]
        if not matches:
            have = ", ".join(sorted({f"{f.kind} {f.symbol} {f.timeframe or ''}".strip() for f in self.files}))
            raise KeyError(f"csv source: no {kind} file for {symbol} {timeframe or ''} (have: {have})")
        return matches

    def _rows(self, kind: str, symbol: str, timeframe: str | None = None) -> list[list[Any]]:
        """Rows in canonical order; a timestamp that could not be read is replaced by its reason (quarantined)."""
        out: list[list[Any]] = []
        for p in self.parsed(kind, symbol, timeframe):
            out.extend(r if r[0] is not None else [why] + r[1:] for r, why in zip(p.rows, p.reasons))
        return out

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
