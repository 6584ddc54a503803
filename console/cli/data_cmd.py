"""`quantdesk data ...`: pull market data into state.db, show coverage, export CSV, list quarantined rows."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from console.cli.common import open_writable, parse_time, settings_of


def register(app: typer.Typer) -> None:
    """Add the `data` command group."""
    data = typer.Typer(help="Market data: pull, status, export, quarantine.", no_args_is_help=True)
    data.command("pull")(pull)
    data.command("status")(status)
    data.command("export")(export)
    data.command("quarantine")(quarantine)
    app.add_typer(data, name="data")


def _fmt_ts(ts: Optional[int]) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _console() -> Any:
    """A rich console; wide when not a terminal so piped/captured tables are not truncated."""
    from rich.console import Console

    console = Console(emoji=False)  # series names like "sim:BTC/USDT:USDT:book" must not turn into emoji
    return console if console.is_terminal else Console(width=200, emoji=False)


def pull(ctx: typer.Context,
         source: Optional[str] = typer.Option(None, "--source", help="sim | ccxt:<id> | csv:<path> "
                                              "(default: data.source)"),
         symbols: Optional[str] = typer.Option(None, "--symbols", help="comma-separated, e.g. BTC/USDT,ETH/USDT "
                                               "(default: data.symbols; csv: every OHLCV file)"),
         timeframe: Optional[str] = typer.Option(None, "--timeframe", help="bar size (default: data.timeframes[0])"),
         since: Optional[str] = typer.Option(None, "--since", help="look-back (30d) or start date (default: "
                                             "data.backfill_days)"),
         until: Optional[str] = typer.Option(None, "--until", help="end (exclusive); default: now"),
         trades: bool = typer.Option(False, "--trades", help="also pull public trades"),
         funding: bool = typer.Option(False, "--funding", help="also pull funding rates (perpetuals)"),
         book: bool = typer.Option(False, "--book", help="also store one order book snapshot per symbol"),
         feeds: bool = typer.Option(False, "--feeds", help="also pull the macro/sentiment/on-chain feeds (sim)"),
         verify: bool = typer.Option(False, "--verify", help="re-fetch the stored range too and report changes"),
         ) -> None:
    """Pull candles (and optionally trades, funding, book, feeds) incrementally; re-running adds nothing new."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.clock import timeframe_ms
    from engine.data import ingest
    from engine.data.factory import SourceSpecError, make_source
    from engine.store.ops import audit, raise_alert

    settings = settings_of(ctx)
    console = _console()
    spec = source or settings.data.source
    tf = timeframe or settings.data.timeframes[0]
    try:
        timeframe_ms(tf)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timeframe") from exc
    if spec.startswith("csv:"):  # a file: import it whole, every row stored or quarantined, nothing dropped
        from console.cli.data_files import pull_files

        pull_files(ctx, console, spec, symbols, timeframe, since, until)
        return
    store = open_writable(ctx)

    def alert_sink(severity: str, rule: str, message: str, values: Any) -> None:
        raise_alert(store, severity, rule, message, values, source="cli")

    try:
        src = make_source(spec, settings, alert=alert_sink)
    except SourceSpecError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    now = src.milliseconds()
    since_ms = parse_time(since or f"{settings.data.backfill_days}d", now)
    until_ms = parse_time(until, now, "--until") if until else None
    if symbols:
        chosen = [s.strip() for s in symbols.split(",") if s.strip()]
    elif hasattr(src, "series"):
        chosen = sorted({sym for kind, sym, stf in src.series() if kind == "ohlcv" and stf == tf})
    else:
        chosen = list(settings.data.symbols)
    if not chosen:
        typer.secho(f"error: no symbols to pull for timeframe {tf} from {spec}", fg="red", err=True)
        raise typer.Exit(2)
    reports: list[Any] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as bars:
        for sym in chosen:
            task = bars.add_task(f"{src.id} {sym} {tf}", total=None)

            def on_progress(done: int, total: int, task: Any = task) -> None:
                if total == 0:  # nothing missing: show the series as complete
                    bars.update(task, completed=1, total=1)
                else:
                    bars.update(task, completed=done, total=total)

            try:
                reports.append(ingest.ingest_candles(store, src, sym, tf, since_ms, until_ms, on_progress,
                                                     full=verify))
            except (ValueError, KeyError) as exc:  # unknown symbol for this source, bad range
                typer.secho(f"error: {sym}: {exc}", fg="red", err=True)
                raise typer.Exit(2) from exc
            if trades:
                reports.append(ingest.ingest_trades(store, src, sym, max(since_ms, now - 3_600_000), until_ms))
            if funding and ":" in sym:
                reports.append(ingest.ingest_funding(store, src, sym, since_ms, until_ms))
            if book:
                reports.append(ingest.ingest_order_book(store, src, sym, depth_bps=settings.risk.depth_bps))
    if feeds:
        if not hasattr(src, "feed_source"):
            typer.secho(f"note: {spec} has no feeds; skipped --feeds", fg="yellow", err=True)
        else:
            for name in settings.data.feeds:
                reports.append(ingest.ingest_feed(store, src.feed_source(name), since_ms, until_ms))
    for rep in reports:
        colour = "red" if rep.errors else ("yellow" if rep.quarantined else "green")
        console.print(rep.summary(), style=colour, highlight=False, soft_wrap=True, markup=False)
    if src.id == "sim":
        console.print("note: sim is the built-in simulator: synthetic data, not a market", style="yellow")
    total_new = sum(r.inserted for r in reports)
    console.print(f"total: {total_new} rows inserted "
                  f"({sum(r.backfilled_before_start + r.gaps_filled for r in reports)} in or before the "
                  f"already-stored range, {sum(r.new_after_end for r in reports)} new after the previous end), "
                  f"{sum(r.changed for r in reports)} changed, {sum(r.quarantined for r in reports)} quarantined",
                  highlight=False)
    audit(store, "cli", "data.pull", {"source": spec, "symbols": chosen, "timeframe": tf, "since": since_ms,
                                      "until": until_ms, "inserted": total_new})
    store.dispose()
    if any(r.errors for r in reports):
        raise typer.Exit(1)


def status(ctx: typer.Context) -> None:
    """Coverage, last timestamp, gaps and quarantined rows per stored series."""
    from rich.table import Table

    from engine.clock import timeframe_ms
    from engine.store import open_readonly
    from engine.store.candles import candle_series
    from engine.store.market_repo import candle_gaps, quarantine_counts, table_series

    settings = settings_of(ctx)
    path = Path(settings.store.path)
    if not settings.store.url and not path.exists():
        typer.secho(f"no state store at {path}: run `quantdesk data pull` first", fg="yellow")
        raise typer.Exit(1)
    store = open_readonly(settings.store_url())
    quarantined = quarantine_counts(store)
    table = Table(title="candles")
    for col in ("exchange", "symbol", "tf", "rows", "first", "last", "coverage", "gaps", "missing", "quarantined"):
        table.add_column(col, justify="right" if col in ("rows", "coverage", "gaps", "missing", "quarantined")
                         else "left")
    series = candle_series(store)
    for exchange, symbol, tf, rows, first, last in series:
        step = timeframe_ms(tf)
        expected = (last - first) // step + 1
        gaps = candle_gaps(store, exchange, symbol, step, tf)
        table.add_row(exchange, symbol, tf, f"{rows:,}", _fmt_ts(first), _fmt_ts(last),
                      f"{100.0 * rows / expected:.2f}%", str(len(gaps)), f"{sum(g.missing_bars for g in gaps):,}",
                      str(quarantined.get(f"{exchange}:{symbol}:{tf}", 0)))
    console = _console()
    console.print(table if series else "no candles stored yet")
    other = Table(title="trades, books, funding, feeds")
    for col in ("kind", "source", "series", "rows", "first", "last", "quarantined"):
        other.add_column(col)
    any_other = False
    for kind, tbl, suffix in (("trades", "trades", "trades"), ("book", "book_snapshots", "book"),
                              ("funding", "funding_rates", "funding"), ("feed", "feed_values", None)):
        for src, name, rows, first, last in table_series(store, tbl):
            key = f"feed:{src}" if suffix is None else f"{src}:{name}:{suffix}"
            other.add_row(kind, src, name, f"{rows:,}", _fmt_ts(first), _fmt_ts(last), str(quarantined.get(key, 0)))
            any_other = True
    if any_other:
        console.print(other)
    console.print(f"quarantined rows in total: {sum(quarantined.values())}"
                  + ("  (see `quantdesk data quarantine`)" if quarantined else ""), highlight=False)
    _print_streams(console, store)
    store.dispose()


def _print_streams(console: Any, store: Any) -> None:
    """The engine's websocket streams as it last published them (engine_status info.streams)."""
    from engine.control.views import streams_view

    with store.connect() as conn:
        streams = streams_view(conn)
    if not streams:
        return
    from rich.table import Table

    import time

    age = time.time() - streams[0]["published_ms"] / 1000
    stopped = ", engine stopped" if streams[0]["engine_stopped"] else ""
    table = Table(title=f"streams (published {age:.0f}s ago{stopped})")
    for col in ("stream", "connected", "last msg", "msgs/min", "reconnects", "gaps backfilled", "last error"):
        table.add_column(col)
    for st in streams:
        last = "-" if st.get("last_message_age_s") is None else f"{st['last_message_age_s']:.1f}s ago"
        table.add_row(st["stream"], "yes" if st.get("connected") else "NO", last, f"{st.get('msgs_per_min', 0):.0f}",
                      str(st.get("reconnects", 0)), str(st.get("gaps_backfilled", 0)),
                      (st.get("last_error") or "")[:60])
    console.print(table)


def export(ctx: typer.Context,
           out: Path = typer.Option(..., "--out", help="a .csv file, or a folder (any other path) for a shared-data style file name"),
           symbol: str = typer.Option(..., "--symbol", help="e.g. BTC/USDT"),
           exchange: Optional[str] = typer.Option(None, "--exchange", help="stored exchange id (default: the id "
                                                  "of data.source, e.g. sim)"),
           kind: str = typer.Option("ohlcv", "--kind", help="ohlcv | trades | funding"),
           timeframe: Optional[str] = typer.Option(None, "--timeframe", help="for ohlcv"),
           since: Optional[str] = typer.Option(None, "--since"), until: Optional[str] = typer.Option(None, "--until"),
           fmt: str = typer.Option("csv", "--format", help="csv | parquet (columnar, for bulk data)"),
           ) -> None:
    """Write stored data as CSV or Parquet in the shared-data layout (timestamp in epoch ms, UTC)."""
    from engine.clock import now_ms
    from engine.data.csv_source import symbol_token
    from engine.store import open_readonly

    settings = settings_of(ctx)
    if kind not in ("ohlcv", "trades", "funding"):
        raise typer.BadParameter(f"--kind: must be ohlcv, trades or funding, got {kind!r}")
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"--format: must be csv or parquet, got {fmt!r}")
    suffix = f".{fmt}"
    default_src = settings.data.source
    ex = exchange or ("csv" if default_src.startswith("csv:") else default_src.removeprefix("ccxt:"))
    tf = timeframe or settings.data.timeframes[0]
    now = now_ms()
    lo = parse_time(since, now) if since else 0
    hi = parse_time(until, now, "--until") if until else 2**62
    store = open_readonly(settings.store_url())
    sql, header = {
        "ohlcv": ("SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = ? AND symbol = ? "
                  "AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts", CSV_HEADERS["ohlcv"]),
        "trades": ("SELECT ts, trade_id, side, price, amount FROM trades WHERE exchange = ? AND symbol = ? "
                   "AND ts >= ? AND ts < ? ORDER BY ts, trade_id", CSV_HEADERS["trades"]),
        "funding": ("SELECT ts, rate FROM funding_rates WHERE exchange = ? AND symbol = ? AND ts >= ? AND ts < ? "
                    "ORDER BY ts", CSV_HEADERS["funding"]),
    }[kind]
    args = (ex, symbol, tf, lo, hi) if kind == "ohlcv" else (ex, symbol, lo, hi)
    with store.connect() as conn:
        rows = conn.exec_driver_sql(sql if store.is_sqlite else sql.replace("?", "%s"), args).fetchall()
    store.dispose()
    if not rows:
        typer.secho(f"nothing stored for {ex} {symbol} {kind}{' ' + tf if kind == 'ohlcv' else ''}", fg="yellow")
        raise typer.Exit(1)
    if out.is_dir() or out.suffix.lower() != suffix:  # a folder: name the file the shared-data way
        span = f"{_fmt_ts(rows[0][0])[:10].replace('-', '')}-{_fmt_ts(rows[-1][0])[:10].replace('-', '')}"
        middle = tf if kind == "ohlcv" else kind
        out = out / f"{ex}_{symbol_token(symbol)}_{middle}_{span}{suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        from console.cli.data_files import write_parquet

        write_parquet(out, header, rows)
        typer.echo(f"wrote {len(rows)} rows to {out}")
        return
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([(int(r[0]), *(repr(v) if isinstance(v, float) else v for v in r[1:])) for r in rows])
    typer.echo(f"wrote {len(rows)} rows to {out}")


CSV_HEADERS = {
    "ohlcv": ("timestamp", "open", "high", "low", "close", "volume"),
    "trades": ("timestamp", "id", "side", "price", "amount"),
    "funding": ("timestamp", "funding_rate"),
}


def quarantine(ctx: typer.Context,
               series: Optional[str] = typer.Option(None, "--series", help="e.g. sim:BTC/USDT:1m"),
               limit: int = typer.Option(20, "--limit", min=1)) -> None:
    """List the newest quarantined rows with their reasons."""
    from rich.table import Table

    from engine.store import open_readonly
    from engine.store.market_repo import list_quarantine

    store = open_readonly(settings_of(ctx).store_url())
    rows = list_quarantine(store, series, limit)
    store.dispose()
    table = Table(title="quarantine")
    for col in ("id", "series", "ts", "reason", "payload"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["series"], _fmt_ts(r["ts"]), r["reason"], r["payload"][:80])
    _console().print(table if rows else "quarantine is empty")
