"""`quantdesk venue ...`: run the exchange twin (a Binance-speaking venue on localhost) and read its books.

Keys: `--api-key/--api-secret`, or the environment variables QUANTDESK_VENUE_API_KEY and QUANTDESK_VENUE_API_SECRET
(preferred: options are visible in the process list, the environment is not); with neither, a pair is generated
and printed once. The base URL is always the first line printed, so scripts can read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

ENV_KEY, ENV_SECRET = "QUANTDESK_VENUE_API_KEY", "QUANTDESK_VENUE_API_SECRET"


def register(app: typer.Typer) -> None:
    """Add the `venue` command group."""
    venue = typer.Typer(help="The exchange twin: Binance's REST + websocket APIs over the simulator.",
                        no_args_is_help=True)
    venue.command("serve")(serve)
    venue.command("status")(status)
    app.add_typer(venue, name="venue")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(2)


def serve(host: str = typer.Option("127.0.0.1", "--host", help="address to bind (keep 127.0.0.1 unless needed)"),
          port: int = typer.Option(0, "--port", help="port (0 = a free one; the URL is printed first)"),
          state: Path = typer.Option(Path("venue.db"), "--state", help="the twin's own books (SQLite)"),
          speed: float = typer.Option(1.0, "--speed", help="simulated seconds per wall-clock second"),
          seed: int = typer.Option(7, "--seed", help="simulator seed (same seed = same market as `sim`)"),
          history_days: int = typer.Option(30, "--history-days", help="history served before now"),
          faults: Optional[Path] = typer.Option(None, "--faults", help="TOML/JSON fault file (see engine/venue/"
                                                "faults.py); change live with POST /admin/faults"),
          api_key: Optional[str] = typer.Option(None, "--api-key", help=f"API key (or env {ENV_KEY})"),
          api_secret: Optional[str] = typer.Option(None, "--api-secret", help=f"API secret (or env {ENV_SECRET}; "
                                                   "options show in the process list, prefer the environment)"),
          ) -> None:
    """Serve the twin until interrupted; prints the base URL first (and a generated key pair if none given)."""
    import asyncio
    import signal

    from engine.venue.faults import FaultsError, load_faults
    from engine.venue.server import Twin, serve_forever
    from engine.venue.signing import KEY_RE, ApiKey, generate_key_pair

    if not 0 <= port <= 65535:
        raise _fail(f"--port: must be 0-65535, got {port}")
    if not speed > 0:
        raise _fail(f"--speed: must be a positive number, got {speed}")
    key = api_key or os.environ.get(ENV_KEY)
    secret = api_secret or os.environ.get(ENV_SECRET)
    if bool(key) != bool(secret):
        raise _fail(f"give both an API key and a secret (--api-key/--api-secret or {ENV_KEY}/{ENV_SECRET}), "
                    "or neither to generate a pair")
    generated = not key
    pair = generate_key_pair() if generated else ApiKey(str(key), str(secret))
    if not KEY_RE.match(pair.key) or not KEY_RE.match(pair.secret):
        raise _fail("API key and secret: expected 16-128 letters and digits each")
    try:
        fault_cfg = load_faults(faults)
    except FaultsError as exc:
        raise _fail(str(exc)) from exc
    try:
        twin = Twin(state, [pair], seed=seed, speed=speed, history_days=history_days, faults=fault_cfg)
    except (ValueError, OSError) as exc:
        raise _fail(f"--state {state}: {exc}") from exc

    def ready(url: str) -> None:
        typer.echo(url)
        if generated:
            typer.echo(f"api key: {pair.key}")
            typer.echo(f"api secret: {pair.secret}")
        typer.echo(f"books: {Path(state).resolve()}  seed {seed}  speed {speed:g}x  (Ctrl-C stops)", err=True)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        try:
            await serve_forever(twin, host, port, ready)
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def status(state: Path = typer.Option(Path("venue.db"), "--state", help="the twin's books file"),
           as_json: bool = typer.Option(False, "--json", help="one JSON object for scripts")) -> None:
    """Balances, positions, open orders and order counts of the twin's books."""
    import sqlite3

    from engine.venue.books import status_summary

    if not state.exists():
        raise _fail(f"--state {state}: no such file (start one with `quantdesk venue serve --state {state}`)")
    try:
        summary = status_summary(state)
    except sqlite3.DatabaseError as exc:
        raise _fail(f"--state {state}: not a venue books file ({exc})") from exc
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"venue books {state}: {summary['order_count']} orders, {summary['fill_count']} fills")
    for title, bal in (("spot", summary["balances"]), ("futures", summary["futures_balances"])):
        shown = ", ".join(f"{a} {v:,.8g}" for a, v in bal.items() if v) or "-"
        typer.echo(f"  {title} balances: {shown}")
    if summary["positions"]:
        typer.echo("  positions: " + ", ".join(f"{p['symbol']} {p['qty']:+g} @ {p['entry_price']:g}"
                                               for p in summary["positions"]))
    else:
        typer.echo("  positions: none")
    typer.echo(f"  open orders: {len(summary['open_orders'])}")
    for o in summary["open_orders"]:
        typer.echo(f"    {o['order_id']} {o['client_order_id']} {o['symbol']} {o['side']} {o['type']} "
                   f"{o['qty']:g} @ {o['price'] or '-'} ({o['status']}, filled {o['executed']:g})")
