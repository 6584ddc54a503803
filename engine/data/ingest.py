"""Ingest jobs: incremental, idempotent pulls from any MarketSource/FeedSource into state.db.

Plain functions the scheduler calls. Each one plans what is missing (before the first stored bar, gaps inside, after
the last), fetches only that, validates every row (bad rows go to quarantine with their reason and one alert per
batch), classifies good rows against what is stored and writes only new or changed rows. Re-running with the same
clock therefore fetches nothing and changes nothing; the report says exactly what happened.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.clock import floor_ts, timeframe_ms
from engine.data.source import FeedSource, MarketSource
from engine.data.validation import (MAX_ABS_FUNDING_RATE, CandleValidator, Rejected, TradeValidator, check_feed_points,
                                    check_funding, check_order_book)
from engine.store import market_repo as repo
from engine.store.candles import upsert_candles
from engine.store.db import Store
from engine.store.ops import raise_alert

log = logging.getLogger("quantdesk.ingest")
Progress = Callable[[int, int], None]  # (bars done, bars planned)
DEFAULT_PAGE_LIMIT = 1000


@dataclass
class IngestReport:
    """What one ingest job did to one series; `summary()` says it in words."""

    kind: str
    source: str
    series: str
    requests: int = 0
    fetched: int = 0
    backfilled_before_start: int = 0  # inserted rows older than the previously stored first row
    gaps_filled: int = 0  # inserted rows inside the previously stored range
    new_after_end: int = 0  # inserted rows newer than the previously stored last row
    changed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    quarantined: int = 0  # newly quarantined rows
    requarantined: int = 0  # rows rejected again that were already in quarantine
    outside_range: int = 0  # valid rows not yet closed, at/after `until` or before `since`: not stored
    gaps_remaining: int = 0  # missing bars still inside the stored range afterwards
    previous_last_ts: int | None = None
    last_ts: int | None = None
    errors: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0  # file imports: every row read, which the other counts add up to
    notes: list[str] = field(default_factory=list)  # file imports: how each file was read (unit, delimiter, ...)

    @property
    def inserted(self) -> int:
        """All rows inserted by this run."""
        return self.backfilled_before_start + self.gaps_filled + self.new_after_end

    @property
    def ok(self) -> bool:
        """True when the source answered every request."""
        return not self.errors

    def summary(self) -> str:
        """One line saying precisely what changed, e.g. for `quantdesk data pull`."""
        parts = [f"{self.series}: rows inserted: {self.backfilled_before_start + self.gaps_filled} in or before the "
                 f"already-stored range ({self.gaps_filled} gap rows filled), {self.new_after_end} new after the "
                 f"previous end", f"{self.changed} changed", f"{self.unchanged} re-fetched unchanged",
                 f"{self.quarantined} quarantined"]
        if self.requarantined:
            parts.append(f"{self.requarantined} already in quarantine")
        if self.duplicates:
            parts.append(f"{self.duplicates} exact duplicates")
        if self.gaps_remaining:
            parts.append(f"{self.gaps_remaining} bars still missing")
        if self.outside_range and self.rows_read:
            parts.append(f"{self.outside_range} outside --since/--until")
        if self.errors:
            parts.append(f"errors: {'; '.join(self.errors)}")
        line = ", ".join(parts)
        if self.rows_read:
            line = f"{self.rows_read:,} rows read -> " + line
        return line

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for job_runs.result and JSON output)."""
        out = {k: v for k, v in self.__dict__.items()}
        out["inserted"] = self.inserted
        return out


def _quarantine(store: Store, report: IngestReport, kind: str, rejected: list[Rejected]) -> None:
    """Quarantine rejected rows and raise one alert naming the reasons of the newly quarantined ones."""
    if not rejected:
        return
    new, again = repo.quarantine_rows(store, kind, report.source, report.series,
                                      [(r.ts, r.payload, r.reason) for r in rejected])
    report.quarantined += new
    report.requarantined += again
    reasons = Counter(r.reason.split(" (")[0].split(":")[0] for r in rejected)
    for reason, n in reasons.items():
        report.reasons[reason] = report.reasons.get(reason, 0) + n
    if new:
        raise_alert(store, "warning", "ingest.quarantine",
                    f"{new} bad {kind} row(s) of {report.series} quarantined: {rejected[0].reason}"
                    + (f" (+{len(rejected) - 1} more)" if len(rejected) > 1 else ""),
                    {"series": report.series, "kind": kind, "new": new, "already": again,
                     "reasons": dict(Counter(r.reason for r in rejected).most_common(8))}, source="engine")


def _source_failed(store: Store, report: IngestReport, what: str, exc: Exception) -> None:
    """Record a failed source call in the report and as an alert (unless the source already alerted)."""
    message = f"{what} failed: {type(exc).__name__}: {exc}"
    report.errors.append(message)
    if not getattr(exc, "alerted", False):
        raise_alert(store, "warning", "ingest.source_error", f"{report.series}: {message}",
                    {"series": report.series, "error": type(exc).__name__}, source="engine",
                    merge_key=f"{report.series}:{type(exc).__name__}")


def find_gaps(store: Store, exchange: str, symbol: str, timeframe: str) -> list[repo.Gap]:
    """Runs of missing bars between the first and last stored bar of a candle series."""
    return repo.candle_gaps(store, exchange, symbol, timeframe_ms(timeframe), timeframe)


def ingest_candles(store: Store, source: MarketSource, symbol: str, timeframe: str, since_ms: int,
                   until_ms: int | None = None, progress: Progress | None = None, *, full: bool = False,
                   page_limit: int | None = None) -> IngestReport:
    """Store the closed bars of [since_ms, until_ms) that are missing (or all of them with full=True)."""
    step = timeframe_ms(timeframe)
    if isinstance(since_ms, bool) or not isinstance(since_ms, (int, float)) or since_ms < 0:
        raise ValueError(f"since_ms: expected a non-negative epoch-ms timestamp, got {since_ms!r}")
    since_ms = int(since_ms)
    report = IngestReport("candle", source.id, f"{source.id}:{symbol}:{timeframe}")
    now = int(source.milliseconds())
    end = floor_ts(now, timeframe)  # bars with ts < end are closed
    if until_ms is not None:
        end = min(end, until_ms)
    start = since_ms + (-since_ms) % step
    first, last = repo.candle_span(store, source.id, symbol, timeframe)
    report.previous_last_ts = last
    windows = _plan_windows(store, source.id, symbol, timeframe, step, start, end, first, last, full)
    total = sum((e - s) // step for s, e in windows)
    done = 0
    if progress:
        progress(0, total)
    limit = page_limit or getattr(source, "ohlcv_page_limit", DEFAULT_PAGE_LIMIT)
    validator = CandleValidator(step)
    for w_start, w_end in windows:
        validator.last_ts = None  # windows are independent ranges; order is checked within each
        cursor = w_start
        while cursor < w_end:
            try:
                page = source.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit)
            except Exception as exc:  # noqa: BLE001 - any source failure becomes an alert, not a crash
                _source_failed(store, report, f"fetch_ohlcv({symbol}, {timeframe}, since={cursor})", exc)
                break
            report.requests += 1
            if not page:
                break
            report.fetched += len(page)
            good, bad = validator.check(page)
            closed = [r for r in good if r[0] < end and r[0] >= start]
            report.outside_range += len(good) - len(closed)
            _quarantine(store, report, "candle", bad)
            _write_candles(store, report, source.id, symbol, timeframe, closed, first, last)
            page_max = max((r[0] for r in good), default=None)
            if page_max is None:
                page_max = max((r.ts for r in bad if r.ts is not None), default=cursor - step)
            advanced = page_max + step
            if progress:
                done += max(0, (min(advanced, w_end) - cursor) // step)
                progress(min(done, total), total)
            if advanced <= cursor or (limit is not None and len(page) < limit and advanced >= end):
                break
            cursor = advanced
    report.duplicates = validator.duplicates
    report.gaps_remaining = sum(g.missing_bars for g in repo.candle_gaps(
        store, source.id, symbol, step, timeframe, since=start, until=end))
    _first, report.last_ts = repo.candle_span(store, source.id, symbol, timeframe)
    if progress:
        progress(total, total)
    return report


def _plan_windows(store: Store, exchange: str, symbol: str, timeframe: str, step: int, start: int, end: int,
                  first: int | None, last: int | None, full: bool) -> list[tuple[int, int]]:
    """[start, end) ranges still to fetch: before the first stored bar, gaps inside, after the last."""
    if start >= end:
        return []
    if full or first is None or last is None:
        return [(start, end)]
    windows = []
    if start < first:
        windows.append((start, min(first, end)))
    for gap in repo.candle_gaps(store, exchange, symbol, step, timeframe, since=start, until=end):
        windows.append((gap.start_ts, gap.end_ts + step))
    if last + step < end:
        windows.append((max(last + step, start), end))
    return windows


def _write_candles(store: Store, report: IngestReport, exchange: str, symbol: str, timeframe: str,
                   rows: list[tuple[int, float, float, float, float, float]], first: int | None,
                   last: int | None) -> None:
    """Classify closed bars against the store and upsert only new or changed ones."""
    if not rows:
        return
    stored = repo.stored_candles(store, exchange, symbol, timeframe, rows[0][0], max(r[0] for r in rows))
    todo = []
    for row in rows:
        prev = stored.get(row[0])
        if prev is None:
            todo.append(row)
            if last is None or row[0] > last:
                report.new_after_end += 1
            elif row[0] < first:  # type: ignore[operator]
                report.backfilled_before_start += 1
            else:
                report.gaps_filled += 1
        elif prev != tuple(row[1:]):
            todo.append(row)
            report.changed += 1
        else:
            report.unchanged += 1
    upsert_candles(store, exchange, symbol, timeframe, todo)


def ingest_trades(store: Store, source: MarketSource, symbol: str, since_ms: int, until_ms: int | None = None,
                  *, page_limit: int = 1000, max_pages: int = 1000) -> IngestReport:
    """Store public trades from max(since, last stored trade) up to until/now, paging by timestamp."""
    report = IngestReport("trade", source.id, f"{source.id}:{symbol}:trades")
    report.previous_last_ts = repo.last_trade_ts(store, source.id, symbol)
    end = int(until_ms if until_ms is not None else source.milliseconds())
    cursor = max(since_ms, report.previous_last_ts or since_ms)
    window = getattr(source, "trades_window_ms", None)  # e.g. Binance aggTrades answers at most 1 h per request
    validator = TradeValidator()
    for _ in range(max_pages):
        if cursor >= end:
            break
        try:
            page = source.fetch_trades(symbol, since=cursor, limit=page_limit)
        except Exception as exc:  # noqa: BLE001
            _source_failed(store, report, f"fetch_trades({symbol}, since={cursor})", exc)
            break
        report.requests += 1
        report.fetched += len(page)
        good, bad = validator.check(page)
        _quarantine(store, report, "trade", bad)
        inside = [r for r in good if r[1] < end]
        report.outside_range += len(good) - len(inside)
        counts = repo.write_trades(store, source.id, symbol, inside)
        report.new_after_end += counts.inserted
        report.changed += counts.changed
        report.unchanged += counts.unchanged
        newest = max((r[1] for r in good), default=None)
        if len(page) >= page_limit and newest is not None:
            cursor = newest if newest > cursor else cursor + 1  # same-ms trades are de-duplicated by id
        elif window:
            cursor = max(cursor + window, (newest or cursor) + 1)
        else:
            break
    report.duplicates = validator.duplicates
    report.last_ts = repo.last_trade_ts(store, source.id, symbol)
    return report


def store_streamed_candles(store: Store, exchange: str, symbol: str, timeframe: str, rows: list[list[Any]],
                           forming_ts: int) -> IngestReport:
    """Validate and store closed bars that arrived over a stream (bars at or after `forming_ts` are not closed)."""
    report = IngestReport("candle", exchange, f"{exchange}:{symbol}:{timeframe}")
    first, last = repo.candle_span(store, exchange, symbol, timeframe)
    good, bad = CandleValidator(timeframe_ms(timeframe)).check(rows)
    closed = [r for r in good if r[0] < forming_ts]
    report.fetched, report.outside_range = len(rows), len(good) - len(closed)
    _quarantine(store, report, "candle", bad)
    _write_candles(store, report, exchange, symbol, timeframe, closed, first, last)
    return report


def store_streamed_trades(store: Store, exchange: str, symbol: str, trades: list[Any]) -> IngestReport:
    """Validate and store trades that arrived over a stream (same checks and quarantine as a REST pull)."""
    report = IngestReport("trade", exchange, f"{exchange}:{symbol}:trades")
    good, bad = TradeValidator().check(trades)
    report.fetched, report.duplicates = len(trades), 0
    _quarantine(store, report, "trade", bad)
    counts = repo.write_trades(store, exchange, symbol, good)
    report.new_after_end, report.changed, report.unchanged = counts.inserted, counts.changed, counts.unchanged
    return report


def ingest_order_book(store: Store, source: MarketSource, symbol: str, limit: int | None = 50,
                      depth_bps: float = 10.0) -> IngestReport:
    """Store one validated order book snapshot with mid, spread and depth within depth_bps of mid."""
    report = IngestReport("book", source.id, f"{source.id}:{symbol}:book")
    try:
        book = source.fetch_order_book(symbol, limit=limit)
    except Exception as exc:  # noqa: BLE001
        _source_failed(store, report, f"fetch_order_book({symbol})", exc)
        return report
    report.requests = report.fetched = 1
    clean, rejected = check_order_book(book, int(source.milliseconds()))
    if rejected is not None:
        _quarantine(store, report, "book", [rejected])
        return report
    assert clean is not None
    bids, asks = clean["bids"], clean["asks"]
    mid = (bids[0][0] + asks[0][0]) / 2
    lo, hi = mid * (1 - depth_bps / 1e4), mid * (1 + depth_bps / 1e4)
    counts = repo.write_book_snapshot(
        store, source.id, symbol, clean["ts"], bids, asks, mid, (asks[0][0] - bids[0][0]) / mid * 1e4,
        sum(p * a for p, a in bids if p >= lo), sum(p * a for p, a in asks if p <= hi))
    report.new_after_end, report.changed, report.unchanged = counts.inserted, counts.changed, counts.unchanged
    report.last_ts = clean["ts"]
    return report


def ingest_funding(store: Store, source: MarketSource, symbol: str, since_ms: int, until_ms: int | None = None,
                   *, page_limit: int = 1000, max_abs_rate: float = MAX_ABS_FUNDING_RATE) -> IngestReport:
    """Store settled funding rates after the last stored one (or since_ms), paging by timestamp."""
    report = IngestReport("funding", source.id, f"{source.id}:{symbol}:funding")
    report.previous_last_ts = repo.last_funding_ts(store, source.id, symbol)
    end = int(until_ms if until_ms is not None else source.milliseconds())
    cursor = since_ms if report.previous_last_ts is None else max(since_ms, report.previous_last_ts + 1)
    while cursor < end:
        try:
            page = source.fetch_funding_rate_history(symbol, since=cursor, limit=page_limit)
        except Exception as exc:  # noqa: BLE001
            _source_failed(store, report, f"fetch_funding_rate_history({symbol}, since={cursor})", exc)
            break
        report.requests += 1
        report.fetched += len(page)
        rows = [dict(r, markPrice=r.get("markPrice", (r.get("info") or {}).get("markPrice")))
                if isinstance(r, dict) else r for r in page]
        good, bad = check_funding(rows, max_abs_rate)
        _quarantine(store, report, "funding", bad)
        inside = [g for g in good if g[0] < end]
        report.outside_range += len(good) - len(inside)
        counts = repo.write_funding(store, source.id, symbol, inside)
        report.new_after_end += counts.inserted
        report.changed += counts.changed
        report.unchanged += counts.unchanged
        newest = max([g[0] for g in good] + [r.ts for r in bad if r.ts is not None], default=None)
        if len(page) < page_limit or newest is None or newest < cursor:
            break
        cursor = newest + 1
    report.last_ts = repo.last_funding_ts(store, source.id, symbol)
    return report


def ingest_feed(store: Store, feed: FeedSource, since_ms: int | None = None, until_ms: int | None = None
                ) -> IngestReport:
    """Store a macro/sentiment/on-chain feed's observations after the last stored one (or since_ms)."""
    name = feed.feed
    report = IngestReport("feed", getattr(feed, "id", name), f"feed:{name}")
    report.previous_last_ts = repo.last_feed_ts(store, name)
    resume = repo.feed_resume_ts(store, name)  # re-fetched newer points of faster series come back unchanged
    since = since_ms
    if resume is not None:
        since = resume + 1 if since is None else max(since, resume + 1)
    try:
        points = feed.fetch_feed(since=since, until=until_ms)
    except Exception as exc:  # noqa: BLE001
        _source_failed(store, report, f"fetch_feed({name}, since={since})", exc)
        return report
    report.requests, report.fetched = 1, len(points)
    good, bad = check_feed_points(points)
    _quarantine(store, report, "feed", bad)
    counts = repo.write_feed_values(store, name, good)
    previous = report.previous_last_ts
    report.new_after_end = sum(1 for g in good if previous is None or g[1] > previous)
    report.gaps_filled = counts.inserted - report.new_after_end  # slower series catching up inside the stored range
    report.changed, report.unchanged = counts.changed, counts.unchanged
    report.last_ts = repo.last_feed_ts(store, name)
    return report
