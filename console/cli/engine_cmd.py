"""`quantdesk engine [--detach] [--live [--confirm-live]]` runs the engine; `quantdesk engine stop` stops it.

A live start first connects to the exchange and prints what is about to trade (exchange, account, every instance with
stage, broker and capital, the risk budget, the names of the key variables) and asks for the typed word LIVE;
`--confirm-live` answers it for scripts and systemd units. A start that cannot proceed exits 2 with one line."""

from __future__ import annotations

import os
import time
from typing import Any

import typer

from console.cli.common import settings_of

engine_app = typer.Typer(help="Run or stop the trading engine.", invoke_without_command=True)
LIVE_WORD = "LIVE"


def _confirm_live(settings: object, confirmed: bool) -> None:
    """Show the live summary, then require the typed word LIVE (or --confirm-live); exits 2 when it cannot start."""
    from engine.execution.live_start import LiveStartError
    from engine.runtime.live_prompt import live_start_lines

    try:
        lines = live_start_lines(settings, os.environ)  # type: ignore[arg-type]
    except LiveStartError as exc:
        typer.secho(f"live start refused: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for i, line in enumerate(lines):
        typer.secho(line, fg="yellow" if i == 0 else None, err=True)
    if confirmed:
        typer.secho("confirmed by --confirm-live", err=True)
        return
    typed = typer.prompt(f"Type {LIVE_WORD} to continue", default="", show_default=False)
    if typed.strip() != LIVE_WORD:
        typer.secho("live trading not confirmed; nothing started", fg="red", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add `engine` and `engine stop` to the root app."""

    @engine_app.callback()
    def engine(ctx: typer.Context,
               detach: bool = typer.Option(False, "--detach", "-d", help="run in the background"),
               live: bool = typer.Option(False, "--live", help="trade live (asks for a typed confirmation)"),
               confirm_live: bool = typer.Option(False, "--confirm-live",
                                                 help="with --live: answer the LIVE prompt (scripts, systemd)"),
               wait_s: float = typer.Option(20.0, "--wait", help="with --detach: seconds to wait for a heartbeat"),
               name: str = typer.Option(None, "--name", help="this engine's name on the desk (one per account or "
                                        "venue; default [engine] name, main)")
               ) -> None:
        """Run the engine in the foreground (logs to stderr and a rotating file; SIGTERM/SIGINT exit cleanly)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = settings_of(ctx)
        settings = _named(settings, name)
        if confirm_live and not live:
            typer.secho("--confirm-live only makes sense with --live", fg="red", err=True)
            raise typer.Exit(2)
        from engine.runtime.preflight import check_startup

        if not (live and confirm_live and not detach):  # unknown strategy or bad params: one line, exit 2
            check_startup(settings)
        # a scripted live start in the foreground (systemd's restart after a crash) checks its strategies right after
        # re-arming protection on the exchange instead (engine/runtime/service.py): still one line and exit 2
        if live:
            _confirm_live(settings, confirm_live)
        from engine.runtime.lockfile import read_pid, server_holder
        from engine.store.urls import redact

        holder = read_pid(settings)
        where = f"pid {holder}" if holder is not None else server_holder(settings)  # another host or run dir
        if where is not None:
            named = "an engine" if settings.engine.name == "main" else f"engine {settings.engine.name!r}"
            typer.secho(f"{named} ({where}) is already running on {redact(settings.store_url())}", fg="red",
                        err=True)
            raise typer.Exit(1)
        if detach:
            from engine.runtime.launch import engine_output_file, start_detached
            from engine.runtime.service import log_path

            out = engine_output_file(settings)
            proc = start_detached(settings, live)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    typer.secho(f"engine exited early (code {proc.returncode}); see {out}", fg="red", err=True)
                    raise typer.Exit(1)
                if read_pid(settings) == proc.pid:
                    typer.echo(f"engine started in the background (pid {proc.pid}); log {log_path(settings)}")
                    break
                time.sleep(0.1)
            else:
                typer.echo(f"engine starting in the background (pid {proc.pid}); log {log_path(settings)}")
            if settings.alerts.watchdog_with_engine:  # the dead-man switch runs beside a background engine
                from console.cli.watchdog_cmd import spawn_watchdog

                wd = spawn_watchdog(settings)
                typer.echo("watchdog already running" if wd is None else f"watchdog started (pid {wd})")
            return
        from engine.execution.live_start import LiveStartError
        from engine.runtime.lockfile import EngineLockedError
        from engine.runtime.main import prefer_low_latency
        from engine.runtime.service import EngineService

        prefer_low_latency()
        try:
            code = EngineService(settings, live=live).run()
        except EngineLockedError as exc:
            typer.secho(str(exc), fg="red", err=True)
            raise typer.Exit(1) from exc
        except LiveStartError as exc:
            typer.secho(f"live start refused: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(code)

    @engine_app.command("stop")
    def stop(ctx: typer.Context, timeout_s: float = typer.Option(30.0, "--timeout"),
             name: str = typer.Option(None, "--name", help="the engine of the desk to stop (default: [engine] name)")
             ) -> None:
        """Stop the running engine gracefully (SIGTERM to the lock holder, or a stop command)."""
        import signal

        from engine.runtime.lockfile import read_pid

        settings = settings_of(ctx)
        settings = _named(settings, name)
        pid = read_pid(settings)
        if pid is None:
            from engine.control.client import ControlClient

            client = ControlClient.from_settings(settings, "cli", engine=settings.engine.name)  # this engine only
            if not client.engine_alive(settings.engine.name):
                typer.echo("no engine is running")
                return
            res = client.stop_engine()
            typer.echo(f"stop: {res.message}")
            raise typer.Exit(0 if res.ok else 1)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if read_pid(settings) is None:
                typer.echo(f"engine (pid {pid}) stopped")
                return
            time.sleep(0.1)
        typer.secho(f"engine (pid {pid}) did not stop within {timeout_s:.0f}s", fg="red", err=True)
        raise typer.Exit(1)

    app.add_typer(engine_app, name="engine")


def _named(settings: Any, name: str | None) -> Any:
    """The settings for engine `name` (unchanged when None); a bad name is one config-error line and exit 2."""
    if name is None:
        return settings
    from engine.config import ConfigError
    from engine.runtime.main import with_engine_name

    try:
        return with_engine_name(settings, name)
    except ConfigError as exc:
        typer.secho(f"config error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
