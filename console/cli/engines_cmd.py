"""`quantdesk engines`: the engines of the desk (one per account or venue), each with its liveness, instances and
own trading state; `quantdesk status` shows the same lines when a desk has more than one engine."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import typer

from console.cli.common import settings_of


def engines_of(client: Any, heartbeat_timeout_s: float, only: str | None = None) -> list[Any]:
    """The desk's engines (EngineInfo) through a client's store; exits 2 naming the known ones for an unknown name."""
    from engine.control.engines import list_engines

    with client.store.connect() as conn:
        engines = list_engines(conn, heartbeat_timeout_ms=int(heartbeat_timeout_s * 1000))
    if only is None:
        return engines
    picked = [e for e in engines if e.name == only]
    if not picked:
        known = ", ".join(e.name for e in engines) or "none has run yet"
        typer.secho(f"no engine named {only!r} on this desk (engines: {known})", fg="red", err=True)
        raise typer.Exit(2)
    return picked


def engine_lines(engines: list[Any]) -> list[str]:
    """One line per engine: name, alive or not, pid@host, mode, own state, instances."""
    out = []
    for e in engines:
        beat = datetime.fromtimestamp(e.heartbeat_at / 1000, tz=timezone.utc).strftime("%H:%M:%S")
        own = e.state + (f" ({e.state_reason})" if e.state != "ACTIVE" and e.state_reason else "")
        equity = "-" if e.equity is None else f"{e.equity:,.2f}"
        gross = "-" if e.gross_exposure is None else f"{e.gross_exposure:,.2f}"
        out.append(f"engine {e.name:<12}: {'alive' if e.alive else 'not running':<11} pid {e.pid}@{e.host} "
                   f"mode {e.mode} heartbeat {beat} UTC  own state {own}  equity {equity} gross {gross}  "
                   f"instances {', '.join(e.instances) or '-'}")
    return out


def register(app: typer.Typer) -> None:
    """Add `engines` to the root app."""

    @app.command("engines")
    def engines(ctx: typer.Context, json_out: bool = typer.Option(False, "--json")) -> None:
        """The engines of this desk: name, alive, pid and host, mode, own trading state and instances."""
        from engine.control.client import ControlClient

        settings = settings_of(ctx)
        client = ControlClient.from_settings(settings, "cli")
        found = engines_of(client, settings.runtime.heartbeat_timeout_s)
        if json_out:
            typer.echo(json.dumps([e.as_dict() for e in found], default=str))
            return
        if not found:
            typer.echo("no engine has run on this desk yet")
            return
        for line in engine_lines(found):
            typer.echo(line)
