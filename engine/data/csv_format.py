"""Reading user data files as they come: CSV with any common delimiter, a UTF-8 BOM, columns in any order under
common aliases, timestamps in s / ms / us / ns or ISO 8601 (detected per file), and Parquet.

`read_table(path)` gives a `Table`: canonical column names, the rows as text/number cells, and how it was read.
`convert_timestamps(raw)` turns one file's timestamp cells into epoch ms, rejecting (with a reason) any cell that is
not a timestamp in the file's detected unit, so a caller quarantines it instead of storing a 1970 bar.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

ALIASES = {
    "timestamp": ("timestamp", "time", "date", "datetime", "date_time", "open_time", "opentime", "ts", "t", "unix",
                  "time_utc", "timestamp_ms", "open time", "date(utc)", "start", "time_period_start"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v", "base_volume", "volume_base", "volume_traded", "qty_volume"),
    "id": ("id", "trade_id", "tradeid", "agg_trade_id", "aggtradeid", "a"),
    "side": ("side", "taker_side", "takerside"),
    "price": ("price", "p", "px"),
    "amount": ("amount", "qty", "quantity", "size", "q"),
    "funding_rate": ("funding_rate", "fundingrate", "rate", "funding", "last_funding_rate", "lastfundingrate"),
    "bid": ("bid", "bid_price", "best_bid"),
    "ask": ("ask", "ask_price", "best_ask"),
    "bid_size": ("bid_size", "bid_qty", "bidsize"),
    "ask_size": ("ask_size", "ask_qty", "asksize"),
    "is_buyer_maker": ("is_buyer_maker", "isbuyermaker", "buyer_maker", "m"),
}
_LOOKUP = {alias: canon for canon, names in ALIASES.items() for alias in names}
KIND_COLUMNS = {
    "ohlcv": ("timestamp", "open", "high", "low", "close", "volume"),
    "trades": ("timestamp", "id", "side", "price", "amount"),
    "funding": ("timestamp", "funding_rate"),
    "quotes": ("timestamp", "bid", "bid_size", "ask", "ask_size"),
}
UNITS = {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 0.000001}


class FileFormatError(ValueError):
    """A data file cannot be read as any known layout; the message names the file and what is missing."""


@dataclass
class Table:
    """One file's rows under canonical column names, and how it was read (for the import report)."""

    path: Path
    columns: list[str]  # canonical names (unknown columns keep their lower-cased header)
    rows: list[list[Any]]
    delimiter: str | None  # None for Parquet
    bom: bool
    renamed: dict[str, str]  # original header -> canonical name, where they differ

    def kind(self) -> str | None:
        """ohlcv | trades | funding | quotes from the columns present (None when none fits)."""
        have = set(self.columns)
        if {"timestamp", "open", "high", "low", "close"} <= have:
            return "ohlcv"
        if {"timestamp", "price", "amount"} <= have:
            return "trades"
        if {"timestamp", "funding_rate"} <= have:
            return "funding"
        if {"timestamp", "bid", "ask"} <= have:
            return "quotes"
        return None

    def column(self, name: str) -> list[Any]:
        """One canonical column's cells (None where a row is short)."""
        i = self.columns.index(name)
        return [r[i] if i < len(r) else None for r in self.rows]


def canonical(header: str) -> str:
    """The canonical column name of a header cell (aliases folded; spaces, case and quotes ignored)."""
    key = header.strip().strip('"').strip().lower()
    return _LOOKUP.get(key, _LOOKUP.get(key.replace(" ", "_"), key))


def _cell(text: str) -> Any:
    """A number when the text is one (ints stay ints), else the stripped text for validation to judge."""
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample: the one of , ; tab | that splits the header most consistently."""
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    best, best_score = ",", -1.0
    for delim in (",", ";", "\t", "|"):
        counts = [len(next(csv.reader([ln], delimiter=delim))) for ln in lines]
        if not counts or counts[0] < 2:
            continue
        score = counts[0] + (1.0 if all(c == counts[0] for c in counts) else 0.0)
        if score > best_score:
            best, best_score = delim, score
    return best


def read_table(path: str | Path) -> Table:
    """Read a .csv (any delimiter, BOM stripped) or .parquet file into a Table with canonical column names."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(p)
    raw = p.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{p.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    delim = sniff_delimiter(text[:65536])
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    header = next(reader, None)
    if not header:
        raise FileFormatError(f"{p.name}: the file is empty")
    headerless = _numeric(header[0]) and len(header) >= 6 and all(_numeric(h) for h in header[1:5])
    if headerless:  # exchange dumps such as Binance's klines files have no header: its column order is assumed
        cols = list(KIND_COLUMNS["ohlcv"]) + [f"column_{i + 7}" for i in range(len(header) - 6)]
        renamed = {"(no header)": "timestamp,open,high,low,close,volume"}
    else:
        cols = [canonical(h) for h in header]
        renamed = {h: c for h, c in zip(header, cols) if h.strip() != c}
    cell = _cell if delim == "," else _decimal_comma_cell  # 1.234,5 style numbers only where ',' is not the delimiter
    rows = [[cell(c) for c in row] for row in reader if row and any(c.strip() for c in row)]
    if headerless:
        rows.insert(0, [cell(c) for c in header])
    return Table(p, cols, rows, delim, bom, renamed)


def _numeric(text: str) -> bool:
    """True when a header cell is a number (the file has no header row)."""
    try:
        float(text.strip().replace(",", "."))
        return True
    except ValueError:
        return False


def _decimal_comma_cell(text: str) -> Any:
    """A cell of a ;/tab/| file: a decimal comma (42,5) reads as 42.5."""
    s = text.strip()
    if "," in s and s.count(",") == 1 and s.replace(",", "").replace("-", "", 1).replace(".", "").isdigit():
        s = s.replace(".", "").replace(",", ".")
    return _cell(s)


def _read_parquet(p: Path) -> Table:
    import pyarrow.parquet as pq

    table = pq.read_table(p)
    header = list(table.column_names)
    cols = [canonical(h) for h in header]
    data = table.to_pydict()
    rows = [list(r) for r in zip(*(data[h] for h in header))] if header else []
    for r in rows:  # pyarrow timestamps arrive as datetime: ISO text keeps one conversion path
        for i, v in enumerate(r):
            if hasattr(v, "isoformat") and not isinstance(v, (int, float, str)):
                r[i] = v.isoformat()
    return Table(p, cols, rows, None, False, {h: c for h, c in zip(header, cols) if h != c})


def _unit_of(value: float) -> str:
    """The epoch unit a magnitude implies: s below 1e11, ms below 1e14, us below 1e17, else ns."""
    a = abs(value)
    return "s" if a < 1e11 else "ms" if a < 1e14 else "us" if a < 1e17 else "ns"


def detect_unit(cells: Sequence[Any]) -> str:
    """The file's timestamp unit: s | ms | us | ns by the majority of numeric cells, or iso8601 for text."""
    numeric = [float(c) for c in cells if isinstance(c, (int, float)) and not isinstance(c, bool)
               and math.isfinite(c) and c > 0]
    texts = [c for c in cells if isinstance(c, str) and c.strip()]
    if not numeric and texts:
        return "iso8601"
    if not numeric:
        return "ms"
    votes: dict[str, int] = {}
    for v in numeric:
        votes[_unit_of(v)] = votes.get(_unit_of(v), 0) + 1
    return max(votes, key=lambda u: votes[u])


def convert_timestamps(cells: Sequence[Any]) -> tuple[list[int | None], list[str | None], str]:
    """(epoch ms per cell or None, the reason per rejected cell, the detected unit) for one file's timestamps."""
    unit = detect_unit(cells)
    out: list[int | None] = []
    why: list[str | None] = []
    if unit == "iso8601":
        import pandas as pd

        parsed = pd.to_datetime(pd.Series([c if isinstance(c, str) else None for c in cells], dtype="object"),
                                utc=True, errors="coerce", format="ISO8601")
        for c, ts in zip(cells, parsed):
            if ts is pd.NaT or pd.isna(ts):
                out.append(None)
                why.append(f"timestamp {c!r} is not ISO 8601 (this file's timestamps are ISO 8601 dates/times)")
            else:
                out.append(int(ts.value // 1_000_000))
                why.append(None)
        return out, why, unit
    for c in cells:
        if not isinstance(c, (int, float)) or isinstance(c, bool) or not math.isfinite(c):
            out.append(None)
            why.append(f"timestamp {c!r} is not a number (this file's timestamps are epoch {unit})")
        elif c < 0:
            out.append(None)
            why.append(f"negative timestamp {c}")
        elif c > 0 and _unit_of(c) != unit:
            out.append(None)
            why.append(f"timestamp {c} looks like epoch {_unit_of(c)}, but this file's timestamps are epoch {unit}")
        else:
            ms = c * UNITS[unit]
            if ms != int(ms):
                out.append(None)
                why.append(f"timestamp {c} is not a whole number of milliseconds")
            else:
                out.append(int(ms))
                why.append(None)
    return out, why, unit


def infer_timeframe(ts_ms: Sequence[int | None]) -> str | None:
    """The bar timeframe of OHLCV timestamps: the most common spacing as 1m, 5m, 1h, 4h, 1d ... (None if unclear)."""
    vals = sorted({t for t in ts_ms if t is not None})
    if len(vals) < 2:
        return None
    diffs: dict[int, int] = {}
    for a, b in zip(vals, vals[1:]):
        diffs[b - a] = diffs.get(b - a, 0) + 1
    step = max(diffs, key=lambda d: diffs[d])
    for unit, ms in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if step % ms == 0:
            return f"{step // ms}{unit}"
    return None
