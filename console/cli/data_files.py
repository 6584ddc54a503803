"""File imports and Parquet output for `quantdesk data`: `data pull --source csv:PATH` (every row stored or
quarantined, counts that add up) and `data export --format parquet`. Heavy imports happen inside the functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


def pull_files(ctx: typer.Context, console: Any, spec: str, symbols: Optional[str], timeframe: Optional[str],
                since: Optional[str], until: Optional[str]) -> None:
    """`data pull --source csv:PATH`: import every OHLCV, trades and funding file for the symbols, whole by default."""
    from console.cli.common import open_writable, parse_time
    from engine.clock import now_ms
    from engine.data.csv_source import CsvFormatError, CsvSource
    from engine.data.file_import import accounted, import_candles, import_funding, import_trades, why_nothing_stored
    from engine.store.ops import audit

    chosen = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else []
    if len(chosen) > 1 and Path(spec[4:]).expanduser().is_file():
        typer.secho(f"error: --symbols: one file holds one symbol; got {', '.join(chosen)}", fg="red", err=True)
        raise typer.Exit(2)
    try:
        src = CsvSource(spec[4:], symbol=chosen[0] if len(chosen) == 1 else None)
    except (FileNotFoundError, CsvFormatError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    now = src.milliseconds()
    since_ms = parse_time(since, now) if since else None  # a file is imported whole unless told otherwise
    until_ms = parse_time(until, now, "--until") if until else None
    wanted = set(chosen) or {f.symbol for f in src.files}
    perps = {f"{s}:{s.split('/')[1]}" for s in wanted if ":" not in s and "/" in s}
    series = sorted({(f.kind, f.symbol, f.timeframe) for f in src.files
                     if f.symbol in wanted or (f.kind == "funding" and f.symbol in perps)},
                    key=lambda x: (x[0], x[1], x[2] or ""))
    if timeframe:
        have = sorted({tf for kind, _s, tf in series if kind == "ohlcv" and tf})
        if have and timeframe not in have:
            typer.secho(f"error: --timeframe {timeframe}: the file holds {', '.join(have)} bars; import them as "
                        f"they are (backtests resample {have[0]} to larger bars on load)", fg="red", err=True)
            raise typer.Exit(2)
        series = [x for x in series if x[0] != "ohlcv" or x[2] == timeframe]
    if not series:
        names = ", ".join(sorted({f.symbol for f in src.files}))
        typer.secho(f"error: no file for {', '.join(sorted(wanted))} in {spec[4:]} (it holds {names})", fg="red",
                    err=True)
        raise typer.Exit(2)
    store = open_writable(ctx)
    reports = []
    try:
        for kind, sym, tf in series:
            if kind == "ohlcv":
                reports.append(import_candles(store, src, sym, tf, since_ms, until_ms))
            elif kind == "trades":
                reports.append(import_trades(store, src, sym, since_ms, until_ms))
            elif kind == "funding":
                reports.append(import_funding(store, src, sym, since_ms, until_ms))
        for rep in reports:
            for note in dict.fromkeys(rep.notes):
                console.print(f"read {note}", highlight=False, soft_wrap=True, markup=False)
            colour = "yellow" if rep.quarantined or rep.requarantined else "green"
            console.print(rep.summary(), style=colour, highlight=False, soft_wrap=True, markup=False)
            if accounted(rep) != rep.rows_read:  # never expected: say it loudly rather than lose rows quietly
                console.print(f"{rep.series}: {rep.rows_read - accounted(rep)} rows unaccounted for", style="red")
            why = why_nothing_stored(rep)
            if why:
                console.print(why, style="yellow", highlight=False, soft_wrap=True, markup=False)
        total = sum(r.rows_read for r in reports)
        console.print(f"total: {total:,} rows read = {sum(r.inserted for r in reports):,} inserted + "
                      f"{sum(r.changed for r in reports):,} changed + {sum(r.unchanged for r in reports):,} already "
                      f"stored + {sum(r.duplicates for r in reports):,} duplicates + "
                      f"{sum(r.quarantined + r.requarantined for r in reports):,} quarantined + "
                      f"{sum(r.outside_range for r in reports):,} outside the range", highlight=False)
        audit(store, "cli", "data.pull", {"source": spec, "symbols": sorted(wanted), "series": series,
                                          "since": since_ms, "until": until_ms, "at": now_ms(),
                                          "rows_read": total, "inserted": sum(r.inserted for r in reports)})
    finally:
        store.dispose()


def write_parquet(path: Path, header: tuple[str, ...], rows: list[Any]) -> None:
    """Rows as a Parquet file with the CSV layout's column names (timestamp int64 epoch ms), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows)) if rows else [[] for _ in header]
    arrays = [pa.array([int(v) for v in columns[0]], type=pa.int64())]
    for name, values in zip(header[1:], columns[1:]):
        arrays.append(pa.array([str(v) for v in values]) if name in ("id", "side") else
                      pa.array([None if v is None else float(v) for v in values], type=pa.float64()))
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.table(arrays, names=list(header)), tmp)
    tmp.replace(path)
