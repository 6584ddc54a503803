"""`quantdesk watchdog [--detach]`: the dead-man switch over the engine heartbeat, as its own process."""

from __future__ import annotations

import os
import subprocess
import sys

import typer

from console.cli.common import settings_of


def watchdog_argv(settings: object) -> list[str]:
    """Command line of a watchdog process with the same config and state as these settings."""
    argv = [sys.executable, "-m", "engine.runtime.watchdog", "--state", settings.store_url()]  # type: ignore[attr-defined]
    config_path = getattr(settings, "config_path", "")
    if config_path and os.path.exists(config_path):
        argv += ["--config", os.path.abspath(config_path)]
    return argv


def spawn_watchdog(settings: object) -> int | None:
    """Start a detached watchdog unless one already holds its lock; its pid, or None when one was running."""
    from engine.runtime.lockfile import EngineLock, EngineLockedError
    from engine.runtime.service import log_path
    from engine.runtime.watchdog import watchdog_lock_path

    probe = EngineLock(watchdog_lock_path(settings))  # type: ignore[arg-type]
    try:
        probe.acquire()
    except EngineLockedError:
        return None
    probe.release()
    out = log_path(settings).with_name("watchdog.out")  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "ab") as fh:
        proc = subprocess.Popen(watchdog_argv(settings), stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
                                start_new_session=True, cwd=os.getcwd())
    return proc.pid


def register(app: typer.Typer) -> None:
    """Add `watchdog` to the root app."""

    @app.command()
    def watchdog(ctx: typer.Context,
                 detach: bool = typer.Option(False, "--detach", "-d", help="run in the background")) -> None:
        """Watch the engine heartbeat; alert through the channels when it stops (and when it is back)."""
        settings = settings_of(ctx)
        if detach:
            pid = spawn_watchdog(settings)
            typer.echo("a watchdog is already running on this store" if pid is None
                       else f"watchdog started in the background (pid {pid})")
            return
        from engine.runtime.lockfile import EngineLockedError
        from engine.runtime.watchdog import run_watchdog

        try:
            code = run_watchdog(settings)
        except EngineLockedError as exc:
            typer.secho(str(exc).replace("another engine", "another watchdog"), fg="red", err=True)
            raise typer.Exit(1) from exc
        raise typer.Exit(code)
