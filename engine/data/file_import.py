"""Importing user files (CSV / Parquet via CsvSource) into state.db so that no row is ever lost.

Every row read ends in exactly one bucket, and the report says so: stored (new, changed or already there
unchanged), an exact duplicate of a stored row, quarantined with its reason (unreadable or out-of-unit timestamp,
negative timestamp, bad prices, conflicting duplicate, a bar not closed yet), or outside an explicit --since/--until.
`rows_read` equals the sum of the buckets. A file is imported whole by default; rows are sorted by time first
(downloads often come newest first) so order is never a reason to quarantine.
"""

from __future__ import annotations

from typing import Any

from engine.clock import floor_ts, timeframe_ms
from engine.data.ingest import IngestReport, _quarantine, _write_candles
from engine.data.validation import CandleValidator, Rejected, TradeValidator, check_funding
from engine.store import market_repo as repo
from engine.store.db import Store

CHUNK = 50_000


def accounted(report: IngestReport) -> int:
    """Rows the report accounts for: stored + unchanged + duplicates + quarantined + outside the range."""
    return (report.inserted + report.changed + report.unchanged + report.duplicates + report.quarantined
            + report.requarantined + report.outside_range)


def _split(parsed: list[Any], kind: str, since: int | None, until: int | None,
           report: IngestReport) -> tuple[list[list[Any]], list[Rejected]]:
    """Rows with a readable timestamp in [since, until), sorted; rejected ones; the rest counted outside the range."""
    keep: list[list[Any]] = []
    bad: list[Rejected] = []
    for p in parsed:
        report.rows_read += len(p.rows)
        report.notes.append(p.file.describe())
        for row, why, raw in zip(p.rows, p.reasons, p.raw):
            if why is not None:
                bad.append(Rejected(kind, None, [str(c) for c in raw], why))
            elif (since is not None and row[0] < since) or (until is not None and row[0] >= until):
                report.outside_range += 1
            else:
                keep.append(row)
    if any(a[0] > b[0] for a, b in zip(keep, keep[1:])):
        report.notes.append("rows were not in time order: sorted before validation")
        keep.sort(key=lambda r: r[0])
    return keep, bad


def import_candles(store: Store, source: Any, symbol: str, timeframe: str, since: int | None = None,
                   until: int | None = None) -> IngestReport:
    """Store every OHLCV row of the source's files for symbol/timeframe, or quarantine it with its reason."""
    step = timeframe_ms(timeframe)
    report = IngestReport("candle", source.id, f"{source.id}:{symbol}:{timeframe}")
    rows, bad = _split(source.parsed("ohlcv", symbol, timeframe), "candle", since, until, report)
    end = floor_ts(int(source.milliseconds()), timeframe)
    open_bars = [r for r in rows if r[0] >= end]
    rows = [r for r in rows if r[0] < end]
    bad += [Rejected("candle", r[0], r, f"bar {r[0]} has not closed yet (now {end})") for r in open_bars]
    _quarantine(store, report, "candle", bad)
    first, last = repo.candle_span(store, source.id, symbol, timeframe)
    report.previous_last_ts = last
    validator = CandleValidator(step)
    for i in range(0, len(rows), CHUNK):
        good, rejected = validator.check(rows[i:i + CHUNK])
        _quarantine(store, report, "candle", rejected)
        _write_candles(store, report, source.id, symbol, timeframe, good, first, last)
    report.duplicates = validator.duplicates
    report.fetched = report.rows_read
    _first, report.last_ts = repo.candle_span(store, source.id, symbol, timeframe)
    return report


def import_trades(store: Store, source: Any, symbol: str, since: int | None = None,
                  until: int | None = None) -> IngestReport:
    """Store every trade row of the source's files for the symbol (taker side), or quarantine it with its reason."""
    report = IngestReport("trade", source.id, f"{source.id}:{symbol}:trades")
    report.previous_last_ts = repo.last_trade_ts(store, source.id, symbol)
    rows, bad = _split(source.parsed("trades", symbol), "trade", since, until, report)
    _quarantine(store, report, "trade", bad)
    validator = TradeValidator()
    for i in range(0, len(rows), CHUNK):
        trades = [{"timestamp": ts, "id": None if tid in (None, "") else str(tid),
                   "side": side.strip().lower() if isinstance(side, str) else side, "price": price, "amount": amount}
                  for ts, tid, side, price, amount in rows[i:i + CHUNK]]
        good, rejected = validator.check(trades)
        _quarantine(store, report, "trade", rejected)
        counts = repo.write_trades(store, source.id, symbol, good)
        report.new_after_end += counts.inserted
        report.changed += counts.changed
        report.unchanged += counts.unchanged
    report.duplicates = validator.duplicates
    report.fetched = report.rows_read
    report.last_ts = repo.last_trade_ts(store, source.id, symbol)
    return report


def import_funding(store: Store, source: Any, symbol: str, since: int | None = None,
                   until: int | None = None) -> IngestReport:
    """Store every funding row of the source's files for the perpetual, or quarantine it with its reason."""
    report = IngestReport("funding", source.id, f"{source.id}:{symbol}:funding")
    report.previous_last_ts = repo.last_funding_ts(store, source.id, symbol)
    rows, bad = _split(source.parsed("funding", symbol), "funding", since, until, report)
    _quarantine(store, report, "funding", bad)
    good, rejected = check_funding([{"symbol": symbol, "timestamp": ts, "fundingRate": rate} for ts, rate in rows])
    report.duplicates = len(rows) - len(good) - len(rejected)  # same timestamp, same rate: counted once
    _quarantine(store, report, "funding", rejected)
    counts = repo.write_funding(store, source.id, symbol, good)
    report.new_after_end, report.changed, report.unchanged = counts.inserted, counts.changed, counts.unchanged
    report.fetched = report.rows_read
    report.last_ts = repo.last_funding_ts(store, source.id, symbol)
    return report


def why_nothing_stored(report: IngestReport) -> str | None:
    """One line saying why a pull stored nothing new (None when it stored something)."""
    if report.inserted or report.changed:
        return None
    if report.rows_read == 0:
        return f"{report.series}: the file has no data rows"
    parts = []
    if report.unchanged or report.duplicates:
        parts.append(f"{report.unchanged + report.duplicates} rows were already stored")
    if report.quarantined or report.requarantined:
        top = ", ".join(f"{k} ({v})" for k, v in sorted(report.reasons.items(), key=lambda kv: -kv[1])[:3])
        parts.append(f"{report.quarantined + report.requarantined} rows quarantined: {top} "
                     "(see `quantdesk data quarantine`)")
    if report.outside_range:
        parts.append(f"{report.outside_range} rows outside --since/--until")
    return f"{report.series}: nothing new stored: " + "; ".join(parts)
