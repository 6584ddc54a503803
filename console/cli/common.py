"""Options shared by every command (config file, state path) and the root callback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from engine.config import ConfigError, Settings, load_settings, settings_with


@dataclass
class CliContext:
    """What the root callback resolved: settings (with --state applied)."""

    settings: Settings


def register(app: typer.Typer) -> None:
    """Install the root callback that loads configuration for every command."""

    @app.callback(invoke_without_command=True)
    def root(ctx: typer.Context,
             config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config file "
                                                   "(default ./quantdesk.toml; missing means defaults)"),
             state: Optional[Path] = typer.Option(None, "--state", help="state.db path (overrides store.path)")) -> None:
        """Load settings; with no sub-command, open the operator console."""
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            typer.secho(f"config error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        if state is not None:
            settings = settings_with(settings, store={"path": str(state), "url": ""})
        ctx.obj = CliContext(settings=settings)
        if ctx.invoked_subcommand is None:
            from console.launch import open_console  # Textual loads only when the console is really opened

            open_console(settings)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback loaded."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise typer.BadParameter("internal: settings not loaded")
    return obj.settings
